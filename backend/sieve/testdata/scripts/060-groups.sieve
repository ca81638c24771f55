require ["fileinto", "relational", "comparator-i;ascii-numeric"];
if address :is "cc" "bob@example.com" { fileinto "Bob"; }
if address :count "eq" :comparator "i;ascii-numeric" "to" "0" { fileinto "NoTo"; }
if address :is "from" "john.doe@example.com" { fileinto "John"; }
