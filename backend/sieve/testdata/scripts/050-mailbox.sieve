require ["mailbox", "fileinto"];
if mailboxexists "INBOX" { fileinto :create "Exists"; }
if mailboxexists "NoSuchFolder" { discard; }
