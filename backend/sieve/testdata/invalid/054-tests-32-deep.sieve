if not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not not false { keep; }
