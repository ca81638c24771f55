require ["imap4flags", "variables", "fileinto"];
addflag "v" "a" "b";
if hasflag "v" "a" { addflag "from-a"; }
if hasflag "v" "b" { addflag "from-b"; }
setflag "x" "y" "z";
if hasflag :is "x" "y" { fileinto "Y"; }
