require ["subaddress", "envelope", "fileinto"];
if envelope :detail :is "to" "" { fileinto "NoDetail"; }
