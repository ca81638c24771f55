require ["date", "variables", "fileinto"];
if date :zone "+0900" :matches "date" "iso8601" "*" { fileinto "tokyo/${1}"; }
if date :originalzone :matches "date" "zone" "*" { fileinto "zone/${1}"; }
