require "fileinto";
if exists ["from", "to", "subject", "date"] { fileinto "Complete"; } elsif not exists "from" { fileinto "NoFrom"; }
