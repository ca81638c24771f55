require "fileinto";
if header :matches "subject" "*o?d*" { fileinto "Glob"; } elsif header :matches "from" "*@example.org" { fileinto "Org"; } else { keep; }
