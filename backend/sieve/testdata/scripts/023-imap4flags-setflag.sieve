require ["imap4flags"];
setflag "\\Seen";
if header :contains "subject" "won" { addflag ["\\Flagged", "$Junk"]; }
