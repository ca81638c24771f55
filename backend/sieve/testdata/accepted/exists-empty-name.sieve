if exists "" { keep; }
