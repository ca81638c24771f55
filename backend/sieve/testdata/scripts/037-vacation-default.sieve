require "vacation";
if not header :contains "subject" "won" { vacation "Away."; }
