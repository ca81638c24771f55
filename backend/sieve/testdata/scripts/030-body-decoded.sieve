require ["body", "fileinto"];
if body :content "text" :contains "swordfish" { fileinto "Secret"; }
if body :content "text" :contains "fällig" { fileinto "Due"; }
