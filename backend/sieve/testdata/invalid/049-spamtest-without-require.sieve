if spamtest :is "1" { keep; }
