keep; "unterminated
