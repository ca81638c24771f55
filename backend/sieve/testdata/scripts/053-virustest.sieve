require ["virustest", "relational", "comparator-i;ascii-numeric", "fileinto", "variables"];
if virustest :value "ge" :comparator "i;ascii-numeric" "4" { discard; stop; }
if virustest :matches "*" { fileinto "virus/${1}"; }
