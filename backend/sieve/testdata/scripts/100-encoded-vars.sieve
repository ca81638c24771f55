require ["variables", "fileinto"];
if header :matches "subject" "*" { set :lower "s" "${1}"; }
if string :contains "${s}" "ü" { fileinto "umlaut"; }
if string :contains "${s}" "é" { fileinto "eacute"; }
