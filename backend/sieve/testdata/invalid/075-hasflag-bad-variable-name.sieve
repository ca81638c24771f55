require ["imap4flags", "variables"];
if hasflag :is "*caf? *" "c" { keep; }
