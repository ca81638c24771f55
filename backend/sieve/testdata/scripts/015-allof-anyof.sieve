require "fileinto";
if allof (exists "subject", anyof (header :contains "from" "example.org", header :contains "to" "example.com"), not header :is "x-spam-flag" "YES") { fileinto "Good"; }
