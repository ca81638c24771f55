require "fileinto";
if address :is ["resent-from", "bcc"] ["resent@example.org", "hidden@example.com"] { fileinto "Resent"; }
