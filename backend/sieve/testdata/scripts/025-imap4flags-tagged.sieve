require ["imap4flags", "fileinto"];
fileinto :flags ["\\Answered", "done"] "Done";
keep :flags "\\Draft";
