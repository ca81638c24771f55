require ["fileinto", "relational", "comparator-i;ascii-numeric", "variables"];
if address :is :all "from" "not an address" { fileinto "RawFrom"; }
if address :count "eq" :comparator "i;ascii-numeric" "cc" "1" { fileinto "OneCc"; }
if address :is "to" "z@w.example" { fileinto "Routed"; }
