require ["fileinto", "imap4flags"];
if hasflag "Scanned" { fileinto "After"; }
