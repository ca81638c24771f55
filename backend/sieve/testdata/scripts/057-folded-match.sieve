require "fileinto";
if header :is "subject" "A subject that is folded over  two lines" { fileinto "Unfolded"; }
if address :is "to" "third@example.com" { fileinto "Third"; }
