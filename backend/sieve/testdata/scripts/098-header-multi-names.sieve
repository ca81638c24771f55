require "fileinto";
if header :contains ["from", "to", "cc"] "example.com" { fileinto "Mentions"; }
if header :is ["x-nonexistent", "subject"] "resent" { fileinto "Resent"; }
