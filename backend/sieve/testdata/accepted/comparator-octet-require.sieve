require "comparator-i;octet";
if header :comparator "i;octet" :is "to" "x" { keep; }
