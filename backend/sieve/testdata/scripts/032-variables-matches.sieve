require ["variables", "fileinto"];
if header :matches "list-id" "*<*.lists.example.org>" { fileinto "lists.${2}"; stop; }
if address :matches :domain "from" "*.*" { fileinto "dom.${1}"; }
