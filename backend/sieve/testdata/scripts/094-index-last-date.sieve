require ["date", "index", "fileinto", "variables"];
if date :index 2 :matches "received" "date" "*" { fileinto "second/${1}"; }
if header :index 1 :last :contains "received" "client" { fileinto "LastHop"; }
