require "fileinto";
if header :matches "subject" "*\\?*" { fileinto "Question"; }
if address :matches "from" "wild\\*card@*" { fileinto "Star"; }
if header :matches "subject" "*\\\\*" { fileinto "Backslash"; }
