require ["variables", "fileinto", "relational", "comparator-i;ascii-numeric"];
set "n" "17";
if string :value "gt" :comparator "i;ascii-numeric" "${n}" "9" { fileinto "Numeric"; }
if string :value "gt" "${n}" "9" { fileinto "Lexical"; }
