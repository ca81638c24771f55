require ["body", "fileinto"];
if body :raw :contains "--BOUNDARY" { fileinto "RawBoundary"; }
if body :raw :contains "preamble" { fileinto "Preamble"; }
if body :content "multipart" :contains "preamble" { fileinto "MultiPre"; }
