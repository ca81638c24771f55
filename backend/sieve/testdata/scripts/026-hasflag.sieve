require ["imap4flags", "fileinto"];
addflag "urgent";
if header :contains "x-priority" "1" { addflag "\\Flagged"; }
if hasflag :is "\\flagged" { fileinto "Urgent"; } elsif hasflag :contains "urg" { fileinto "Maybe"; }
