if header :comparator "i;ascii-numeric" :is "subject" "1" { keep; }
