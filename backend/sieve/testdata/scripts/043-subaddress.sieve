require ["subaddress", "fileinto", "variables"];
if address :detail :matches "to" "*" { fileinto "detail-${1}"; }
if address :user :is "cc" "me" { fileinto "UserCc"; }
