require ["fileinto", "copy", "mailbox"];
fileinto :copy :create "Backup";
