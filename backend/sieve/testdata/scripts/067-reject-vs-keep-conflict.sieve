require ["reject"];
if header :contains "subject" "order" { keep; reject "no"; }
