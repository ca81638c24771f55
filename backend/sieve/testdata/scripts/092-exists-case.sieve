require "fileinto";
if exists "X-SPAM-FLAG" { fileinto "SpamFlag"; }
if exists ["From", "list-id"] { fileinto "List"; }
