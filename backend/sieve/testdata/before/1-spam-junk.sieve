require ["fileinto", "imap4flags"];
if header :is "x-spam-flag" "YES" { addflag "$Junk"; fileinto "Junk"; }
