require "copy";
if address :domain :is "from" "example.org" { redirect :copy "audit@example.net"; }
