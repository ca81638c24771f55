require ["body", "fileinto"];
if body :raw :contains "VGhpcyBtZXNzYWdl" { fileinto "Base64Raw"; }
if body :raw :contains "=FC" { fileinto "QPRaw"; }
