require ["fileinto", "mailbox"];
fileinto :create "Lists/Users/Weekly";
fileinto "INBOX/Sub";
