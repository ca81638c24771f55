if true { keep; } else false { keep; }
