package sortthread

// lexer walks an RFC 5322 header value: white space and (nested) comments
// between tokens, atoms, quoted strings. It never fails; a malformed value
// just yields shorter tokens, and every method advances or stops, so a
// hostile value costs time linear in its length.
type lexer struct {
	s string
	i int
	// comment is the text of the last comment skipped, which Dovecot
	// takes as the display name of "user@host (Name)".
	comment string
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// isAtext: RFC 5322 atext, with 8-bit bytes allowed (UTF-8 headers).
func isAtext(c byte) bool {
	if c >= 0x80 {
		return true
	}
	if c <= ' ' || c == 0x7f {
		return false
	}
	switch c {
	case '(', ')', '<', '>', '[', ']', ':', ';', '@', '\\', ',', '.', '"':
		return false
	}
	return true
}

func (p *lexer) skipCFWS() {
	for p.i < len(p.s) {
		c := p.s[p.i]
		if isSpace(c) {
			p.i++
			continue
		}
		if c != '(' {
			return
		}
		start := p.i + 1
		depth := 0
		for p.i < len(p.s) {
			c := p.s[p.i]
			switch {
			case c == '\\' && p.i+1 < len(p.s):
				p.i++
			case c == '(':
				depth++
			case c == ')':
				depth--
			}
			p.i++
			if depth == 0 {
				break
			}
		}
		end := p.i - 1
		if depth != 0 {
			end = p.i
		}
		if end >= start {
			p.comment = p.s[start:end]
		}
	}
}

// atom returns the next atom and skips the CFWS after it.
func (p *lexer) atom() string {
	start := p.i
	for p.i < len(p.s) && isAtext(p.s[p.i]) {
		p.i++
	}
	a := p.s[start:p.i]
	p.skipCFWS()
	return a
}

// quoted reads a quoted string (at a '"') without its quotes and escapes.
func (p *lexer) quoted() string {
	p.i++
	var b []byte
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		if c == '"' {
			break
		}
		if c == '\\' && p.i < len(p.s) {
			c = p.s[p.i]
			p.i++
		}
		if c == '\r' || c == '\n' {
			continue
		}
		b = append(b, c)
	}
	p.skipCFWS()
	return string(b)
}

func (p *lexer) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *lexer) eat(c byte) bool {
	if p.peek() == c && p.i < len(p.s) {
		p.i++
		return true
	}
	return false
}

func (p *lexer) eatTimeSep() bool { return p.eat(':') || p.eat('.') }

// dotAtom reads atoms joined by dots ("a.b.c"), CFWS allowed around them.
func (p *lexer) dotAtom() string {
	var b []byte
	for {
		a := p.atom()
		if a == "" {
			break
		}
		b = append(b, a...)
		if !p.eat('.') {
			break
		}
		p.skipCFWS()
		b = append(b, '.')
	}
	return string(b)
}
