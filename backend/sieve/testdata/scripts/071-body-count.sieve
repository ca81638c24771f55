require ["body", "relational", "comparator-i;ascii-numeric", "fileinto"];
if body :content "" :count "ge" :comparator "i;ascii-numeric" "3" { fileinto "ManyParts"; }
