require ["index"];
if address :index 1 :last :last :is "from" "x@example.org" { keep; }
