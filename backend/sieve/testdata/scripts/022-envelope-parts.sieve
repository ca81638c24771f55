require ["envelope", "fileinto", "subaddress"];
if envelope :localpart :is "to" "me" { fileinto "LP"; }
if envelope :user :is "from" "sender" { fileinto "User"; }
