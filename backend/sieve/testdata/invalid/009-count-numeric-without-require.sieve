require "relational";
if header :count "gt" :comparator "i;ascii-numeric" "to" "1" { keep; }
