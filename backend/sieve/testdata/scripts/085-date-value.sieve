require ["date", "relational", "fileinto", "variables"];
if date :value "lt" "date" "year" "2025" { fileinto "Old"; }
if date :matches "date" "std11" "*" { fileinto "d/${1}"; }
if date :matches "received" "iso8601" "*" { fileinto "r/${1}"; }
