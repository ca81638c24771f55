require ["date", "fileinto", "relational"];
if date :value "ge" "date" "date" "2025-07-04" { fileinto "Recent"; }
if date :is "date" "weekday" "0" { fileinto "Sunday"; }
