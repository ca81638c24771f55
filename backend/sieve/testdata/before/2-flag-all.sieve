require "imap4flags";
addflag "Scanned";
