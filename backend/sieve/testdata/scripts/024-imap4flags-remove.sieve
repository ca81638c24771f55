require ["imap4flags", "fileinto"];
setflag ["\\Seen \\Flagged", "Work"];
removeflag "\\flagged";
fileinto "Flags";
keep;
