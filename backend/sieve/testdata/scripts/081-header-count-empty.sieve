require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :count "eq" :comparator "i;ascii-numeric" ["cc", "x-empty"] "2" { fileinto "TwoEmpty"; }
if header :count "eq" :comparator "i;ascii-numeric" "subject" "0" { fileinto "NoSubj"; }
