if anyof () { keep; }
