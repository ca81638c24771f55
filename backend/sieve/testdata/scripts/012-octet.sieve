require "fileinto";
if header :comparator "i;octet" :is "subject" "SHOUTING SUBJECT" { fileinto "Exact"; }
if header :comparator "i;octet" :contains "subject" "shouting" { fileinto "Lower"; }
