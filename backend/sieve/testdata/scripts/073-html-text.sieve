require ["body", "fileinto"];
if body :text :contains "shoes" { fileinto "Shoes"; }
if body :content "text/html" :contains "<i>" { fileinto "Tag"; }
