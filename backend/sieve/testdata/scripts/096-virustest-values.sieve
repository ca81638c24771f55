require ["virustest", "relational", "comparator-i;ascii-numeric", "fileinto"];
if virustest :value "eq" :comparator "i;ascii-numeric" "0" { fileinto "NoScan"; }
if virustest :value "eq" :comparator "i;ascii-numeric" "5" { fileinto "Infected"; }
