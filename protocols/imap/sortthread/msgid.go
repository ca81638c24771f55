package sortthread

// MessageIDs returns the valid message identifiers of a Message-ID,
// References or In-Reply-To value, without their angle brackets, in order.
// It follows Dovecot: an identifier needs an "@"; white space inside one is
// dropped; a candidate that is not an identifier is skipped and the search
// goes on at the next "<". At most max identifiers are returned (max <= 0:
// all).
func MessageIDs(s string, max int) []string {
	var ids []string
	for i := 0; ; {
		id, next, ok := nextMessageID(s, i)
		if !ok {
			return ids
		}
		ids = append(ids, id)
		if max > 0 && len(ids) == max {
			return ids
		}
		i = next
	}
}

// firstMessageID is MessageIDs(s, 1)[0] without the slice.
func firstMessageID(s string) (string, bool) {
	id, _, ok := nextMessageID(s, 0)
	return id, ok
}

// maxSlowID bounds the identifiers with quotes or comments.
const maxSlowID = 256

// nextMessageID finds the first identifier at or after s[i:].
func nextMessageID(s string, i int) (id string, next int, ok bool) {
	for {
		for i < len(s) && s[i] != '<' {
			if s[i] == 0 {
				return "", len(s), false
			}
			i++
		}
		if i >= len(s) {
			return "", len(s), false
		}
		i++
		// The quick look: most identifiers hold no quotes or comments.
		p, at := i, false
		for ; p < len(s); p++ {
			c := s[p]
			if c >= 'A' {
				continue
			}
			if c == '@' {
				at = true
			}
			if c == '>' || c == '"' || c == '(' || c == 0 {
				break
			}
		}
		if p >= len(s) || s[p] == 0 {
			return "", len(s), false
		}
		if s[p] == '>' {
			if at {
				return stripSpace(s[i:p]), p + 1, true
			}
			i = p + 1
			continue
		}
		// Quotes or comments: parse it properly.
		if id, next, ok := parseMessageID(s, i); ok {
			return id, next, true
		}
	}
}

// parseMessageID reads id-left "@" id-right ">" from s[i:], where id-left
// may be a quoted string and comments may come between the parts.
func parseMessageID(s string, i int) (string, int, bool) {
	// Only a window after the "<" is read: an unterminated comment or
	// quote would otherwise make every later "<" scan to the end of a
	// hostile header, quadratic in its length. Real identifiers are far
	// shorter.
	if len(s)-i > maxSlowID {
		s = s[:i+maxSlowID]
	}
	p := lexer{s: s, i: i}
	p.skipCFWS()
	var left string
	if p.peek() == '"' {
		left = p.quoted()
	} else {
		left = p.dotAtom()
	}
	if left == "" || !p.eat('@') {
		return "", 0, false
	}
	p.skipCFWS()
	right := p.dotAtom()
	if right == "" || !p.eat('>') {
		return "", 0, false
	}
	return left + "@" + right, p.i, true
}

func stripSpace(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isSpace(s[i]) {
			n++
		}
	}
	if n == len(s) {
		return s
	}
	b := make([]byte, 0, n)
	for i := 0; i < len(s); i++ {
		if !isSpace(s[i]) {
			b = append(b, s[i])
		}
	}
	return string(b)
}
