require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "eq" :comparator "i;ascii-numeric" "x-count" "99999999999" { fileinto "Infinity"; }
if header :is :comparator "i;ascii-numeric" "x-count" "abc" { fileinto "NaNEqual"; }
if header :value "gt" :comparator "i;ascii-numeric" "subject" "5" { fileinto "SubjInf"; }
