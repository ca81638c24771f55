require "mailbox";
if mailboxexists ["INBOX", "x"] { keep; }
