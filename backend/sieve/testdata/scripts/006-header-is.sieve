require "fileinto";
if header :is "subject" "Meeting tomorrow" { fileinto "Meetings"; }
