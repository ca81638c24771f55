if string :is "a" "b" { keep; }
