require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "gt" :comparator "i;ascii-numeric" "x-count" "10" { fileinto "Large"; }
if header :value "lt" "subject" "m" { fileinto "EarlyAlphabet"; }
