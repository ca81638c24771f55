if mailboxexists "INBOX" { keep; }
