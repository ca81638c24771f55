require "fileinto";
if header :contains "subject" "café" { fileinto "Cafe"; }
if address :is "from" "renee@example.fr" { fileinto "Renee"; }
