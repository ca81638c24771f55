require ["body", "fileinto"];
if body :content "text/html" :contains "HTML" { fileinto "Html"; }
if body :content "application" :contains "JVBER" { fileinto "Pdf"; }
