require "fileinto";
if address :is :all "reply-to" "" { fileinto "NullReplyTo"; }
if exists "reply-to" { fileinto "HasReplyTo"; }
