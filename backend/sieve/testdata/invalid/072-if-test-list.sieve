if (true) { keep; }
