require ["fileinto", "variables"];
if header :matches "subject" "caf? *" { fileinto "one-char"; }
if header :matches "subject" "caf?? *" { fileinto "two-octets"; }
if header :contains "subject" "CAFÉ" { fileinto "upper-nonascii"; }
if header :contains "subject" "CAFé" { fileinto "upper-ascii"; }
if header :matches "from" "*é*" { fileinto "from-${1}"; }
