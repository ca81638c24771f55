require "date";
if date :zone "CET" :is "date" "year" "2020" { keep; }
