require "fileinto";
if address :is :all "from" ["alice@example.org", "first@example.org", "second@example.org"] { fileinto "Known"; }
