require "fileinto";
if header :contains "subject" "Grüße" { fileinto "Umlaut"; }
if header :contains "from" "Jürgen" { fileinto "Juergen"; }
if header :contains "subject" "Привет" { fileinto "Cyrillic"; }
