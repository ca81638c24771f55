require "fileinto";
if address :localpart :matches "from" "*e*" { fileinto "HasE"; }
