require "fileinto";
discard;
if true { fileinto "After"; }
