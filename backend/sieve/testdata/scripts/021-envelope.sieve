require ["envelope", "fileinto"];
if envelope :is "from" "sender@ex.org" { fileinto "FromSender"; }
if envelope :domain :is "to" "example.com" { fileinto "ToLocal"; }
