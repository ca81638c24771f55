require "fileinto";
if address :domain :is ["to", "cc"] "example.com" { fileinto "Local"; } else { discard; }
