if size 100 { keep; }
