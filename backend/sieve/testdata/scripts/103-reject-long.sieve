require ["reject"];
if header :contains "subject" "order" { reject text:
Line one of the reason.
Line two, much longer than the rest so that the printed reason needs to be cut at the limit sieve-test uses when it prints.
.
; }
