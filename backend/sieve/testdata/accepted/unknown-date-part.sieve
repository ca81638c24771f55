require "date";
if date :is "date" "century" "x" { keep; }
