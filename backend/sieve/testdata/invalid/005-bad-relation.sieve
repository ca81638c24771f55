require "relational";
if header :value "foo" "subject" "x" { keep; }
