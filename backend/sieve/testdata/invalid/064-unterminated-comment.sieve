/* unterminated comment
