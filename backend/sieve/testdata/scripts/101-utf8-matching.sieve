require ["fileinto", "variables"];
# "?" is one octet (RFC 4790 comparators, and Pigeonhole): é is two.
if header :matches "subject" "*caf? *" { fileinto "one-octet"; }
if header :matches "subject" "*caf?? *" { fileinto "two-octets"; }
if header :matches "subject" "caf?*" { fileinto "octet-then-star"; }
if header :contains "subject" "CAFÉ" { fileinto "upper-nonascii"; }
if header :contains "subject" "CAFé" { fileinto "upper-ascii"; }
if header :matches "from" "*é*" { fileinto "from-${1}"; }
