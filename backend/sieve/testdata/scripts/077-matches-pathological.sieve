require "fileinto";
if header :matches "x-long" "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b" { fileinto "Never"; }
if header :matches "x-long" "a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a" { fileinto "Always"; }
