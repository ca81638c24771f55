if anyof (not true, allof (true, not false)) { keep; }
