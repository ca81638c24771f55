require ["body", "fileinto"];
if body :text :contains "bananas" { fileinto "Bananas"; }
if body :content "message/rfc822" :contains "inner" { fileinto "Inner"; }
