require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "3" { fileinto "Many"; }
if header :count "eq" :comparator "i;ascii-numeric" "x-count" "3" { fileinto "ThreeCounts"; }
