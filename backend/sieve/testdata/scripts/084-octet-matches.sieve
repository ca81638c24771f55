require "fileinto";
if header :comparator "i;octet" :matches "subject" "*WON*" { fileinto "Caps"; }
if address :comparator "i;octet" :is :domain "to" "example.com" { fileinto "LowerDomain"; }
