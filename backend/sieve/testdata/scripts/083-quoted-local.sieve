require ["fileinto", "variables"];
if address :localpart :matches "from" "*" { fileinto "lp-${1}"; }
if address :all :matches "to" "*" { fileinto "to-${1}"; }
