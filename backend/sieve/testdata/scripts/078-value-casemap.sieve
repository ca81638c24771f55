require ["relational", "fileinto"];
if header :value "ge" "from" "m" { fileinto "LateSender"; }
if address :value "lt" :domain "to" "f" { fileinto "EarlyDomain"; }
