require "index";
if header :index 0 :is "subject" "x" { keep; }
