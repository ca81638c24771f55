require "imap4flags";
setflag "a" "b";
