require "fileinto";
if address :is "from" "upper@example.org" { fileinto "Shout"; }
if header :comparator "i;ascii-casemap" :is "subject" "shouting subject" { fileinto "Caseless"; }
