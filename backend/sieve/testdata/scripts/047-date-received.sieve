require ["date", "index", "variables", "fileinto"];
if date :index 1 :matches "received" "time" "*" { fileinto "rcvd/${1}"; }
if date :index 1 :last :matches "received" "hour" "*" { fileinto "first-hop/${1}"; }
