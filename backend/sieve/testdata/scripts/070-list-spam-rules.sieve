require ["fileinto", "imap4flags", "variables"];
if exists "list-id" { fileinto "Lists"; stop; }
if header :is "x-spam-flag" "YES" { setflag "$Junk"; fileinto "Junk"; stop; }
if header :contains "precedence" ["bulk", "junk"] { fileinto "Bulk"; }
