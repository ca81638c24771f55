/* bracket comment
   over lines */
require ["fileinto"]; # hash comment
if header :contains "subject" /* inline */ "message" { fileinto "Comments"; }
