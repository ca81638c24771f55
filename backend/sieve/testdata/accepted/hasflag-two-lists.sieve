require ["imap4flags", "variables"];
if hasflag :contains ["a", "b"] ["x"] { keep; }
