require ["index", "fileinto"];
if header :index 2 :is "from" "second@example.org" { fileinto "SecondFrom"; }
if address :index 1 :last :is "from" "second@example.org" { fileinto "LastFrom"; }
