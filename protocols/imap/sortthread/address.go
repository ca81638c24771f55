package sortthread

// Dovecot fills what an address lacks with these words, and SORT and
// DISPLAYFROM see them.
const (
	missingMailbox = "MISSING_MAILBOX"
	missingDomain  = "MISSING_DOMAIN"
)

// address is the first address of an address header, enough for the FROM,
// TO, CC (mailbox) and DISPLAYFROM, DISPLAYTO (name, else addr-spec) keys.
type address struct {
	name, mailbox, domain string
	group                 bool // a group's name, as in "undisclosed-recipients:;"
	at                    bool // an "@" followed the local part
	ok                    bool // the header held an address at all
}

// firstAddress parses the first address of a From, To or Cc value after
// decoding its encoded-words, leniently: a value that is not an address
// still yields a mailbox (or the missing-part words) rather than nothing.
func firstAddress(raw string) address {
	p := lexer{s: decodeWords(raw)}
	p.skipCFWS()
	if p.i >= len(p.s) {
		return address{}
	}
	return p.address()
}

// address reads the address at p.i: a mailbox, or a group's name when a
// ':' follows a phrase (the ':' is left for the caller).
func (p *lexer) address() address {
	start := p.i
	phrase := p.phrase()
	switch p.peek() {
	case ':':
		if phrase != "" {
			return address{mailbox: phrase, group: true, ok: true}
		}
	case '<':
		p.i++
		p.skipCFWS()
		a := p.addrSpec(true)
		a.name = phrase
		return a.fill()
	}
	// An addr-spec, or what is left of one. Dovecot's reading: a comment
	// after it is the display name; a lone word without "@" is a mailbox
	// without a domain, but a lone quoted string, or words followed by
	// more words, are a display name without an address.
	p.i = start
	p.comment = ""
	quoted := p.peek() == '"'
	a := p.addrSpec(false)
	if p.comment != "" {
		a.name = p.comment
	} else if !a.at {
		if rest := p.phrase(); rest != "" {
			a.name = a.mailbox + " " + rest
			a.mailbox = ""
		} else if quoted && a.mailbox != "" {
			a.name = a.mailbox
			a.mailbox = ""
		}
	}
	return a.fill()
}

func (a address) fill() address {
	if a.mailbox == "" {
		a.mailbox = missingMailbox
	}
	if a.domain == "" {
		a.domain = missingDomain
	}
	a.ok = true
	return a
}

// phrase reads a display name: words (atoms, quoted strings, dots) joined
// by one space.
func (p *lexer) phrase() string {
	var b []byte
	for {
		var w string
		switch c := p.peek(); {
		case c == '"':
			w = p.quoted()
		case c == '.':
			p.i++
			p.skipCFWS()
			w = "."
		case c != 0 && isAtext(c):
			w = p.atom()
		default:
			return string(b)
		}
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = append(b, w...)
	}
}

// addrSpec reads local-part ["@" domain], inside "<…>" when angle is set,
// where an obsolete route ("@a,@b:") may come first.
func (p *lexer) addrSpec(angle bool) address {
	var a address
	if angle && p.peek() == '@' {
		// obs-route: skip up to its ':'.
		for p.i < len(p.s) && p.s[p.i] != ':' && p.s[p.i] != '>' {
			p.i++
		}
		p.eat(':')
		p.skipCFWS()
	}
	if p.peek() == '"' {
		a.mailbox = p.quoted()
	} else {
		a.mailbox = p.dotAtom()
	}
	if p.eat('@') {
		a.at = true
		p.skipCFWS()
		if p.peek() == '[' {
			start := p.i
			for p.i < len(p.s) && p.s[p.i] != ']' {
				p.i++
			}
			p.eat(']')
			a.domain = p.s[start:p.i]
			p.skipCFWS()
		} else {
			a.domain = p.dotAtom()
		}
	}
	return a
}
