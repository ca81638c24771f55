require ["spamtestplus", "relational", "comparator-i;ascii-numeric", "fileinto"];
if spamtest :percent :value "ge" :comparator "i;ascii-numeric" "50" { fileinto "Half"; }
if spamtest :value "le" :comparator "i;ascii-numeric" "1" { fileinto "Clean"; }
