package sieve

import "strings"

// address.go: the address lists of header fields (RFC 5322 section 3.4),
// read leniently because the address test must work on what arrives:
// groups are flattened, comments and display names dropped.

type mailAddr struct {
	local, domain string
}

// String is the address as SMTP writes it: a local part that is not a
// dot-atom is quoted.
func (a mailAddr) String() string {
	local := a.local
	if !isDotAtom(local) {
		local = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(local) + `"`
	}
	if a.domain == "" {
		return local
	}
	return local + "@" + a.domain
}

func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 128 {
			continue
		}
		if c <= ' ' || c == 127 || strings.IndexByte("()<>[]:;@\\,\"", c) >= 0 {
			return false
		}
	}
	return true
}

type addrLexer struct {
	s string
	i int
}

func (l *addrLexer) skipCFWS() {
	for l.i < len(l.s) {
		switch c := l.s[l.i]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			l.i++
		case c == '(':
			depth := 0
			for l.i < len(l.s) {
				ch := l.s[l.i]
				l.i++
				if ch == '\\' {
					l.i++
					continue
				}
				if ch == '(' {
					depth++
				} else if ch == ')' {
					if depth--; depth == 0 {
						break
					}
				}
			}
		default:
			return
		}
	}
}

// word reads an atom (dots allowed) or a quoted string; ok false when
// neither is there.
func (l *addrLexer) word() (string, bool, bool) {
	l.skipCFWS()
	if l.i >= len(l.s) {
		return "", false, false
	}
	if l.s[l.i] == '"' {
		l.i++
		var b strings.Builder
		for l.i < len(l.s) && l.s[l.i] != '"' {
			if l.s[l.i] == '\\' && l.i+1 < len(l.s) {
				l.i++
			}
			b.WriteByte(l.s[l.i])
			l.i++
		}
		if l.i >= len(l.s) {
			return "", false, false
		}
		l.i++
		return b.String(), true, true
	}
	start := l.i
	for l.i < len(l.s) && !strings.ContainsRune("()<>[]:;@\\,\" \t\r\n", rune(l.s[l.i])) {
		l.i++
	}
	if l.i == start {
		return "", false, false
	}
	return l.s[start:l.i], false, true
}

// addrItem is one element of an address list: an address, or a place
// that did not parse as one (no domain, bad syntax).
type addrItem struct {
	addr  mailAddr
	valid bool
}

// parseAddressList reads a header value as an address list. An element
// without a domain or with bad syntax is an invalid item; a list that
// stops making sense (an unclosed angle bracket) ends there, keeping what
// came before.
func parseAddressList(s string) []addrItem {
	l := &addrLexer{s: s}
	var out []addrItem
	for {
		l.skipCFWS()
		if l.i >= len(l.s) {
			return out
		}
		if l.s[l.i] == ',' {
			l.i++
			continue
		}
		start := l.i
		as, ok := l.address()
		if !ok {
			// Resynchronise at the next comma outside quotes and angle
			// brackets; an unclosed bracket ends the list.
			l.i = start
			if !l.skipItem() {
				return out
			}
			out = append(out, addrItem{})
			continue
		}
		out = append(out, as...)
		l.skipCFWS()
		if l.i < len(l.s) {
			if l.s[l.i] != ',' {
				if !l.skipItem() {
					return out
				}
				out = append(out, addrItem{})
				continue
			}
			l.i++
		}
	}
}

// skipItem moves past the rest of a list element; false when a quote or
// angle bracket is never closed.
func (l *addrLexer) skipItem() bool {
	for l.i < len(l.s) {
		switch l.s[l.i] {
		case ',':
			return true
		case '"':
			end := strings.IndexByte(l.s[l.i+1:], '"')
			if end < 0 {
				return false
			}
			l.i += end + 2
			continue
		case '<':
			end := strings.IndexByte(l.s[l.i:], '>')
			if end < 0 {
				return false
			}
			l.i += end + 1
			continue
		case '(':
			l.skipCFWS()
			continue
		}
		l.i++
	}
	return true
}

// headerAddresses is what the address test sees of one field value, the
// way Pigeonhole reads it: the valid addresses; invalid elements are
// dropped when a valid one follows, but invalid ones at the end of the
// list (or an empty value) make the raw value itself one more element,
// which only :all can match.
func headerAddresses(v string) (addrs []mailAddr, raw []string) {
	if v == "" {
		return nil, []string{""}
	}
	pending := false
	for _, it := range parseAddressList(v) {
		if it.valid {
			addrs = append(addrs, it.addr)
			pending = false
		} else {
			pending = true
		}
	}
	if pending {
		raw = []string{v}
	}
	return addrs, raw
}

// address reads a mailbox or a group. A group's start and end are
// invalid items around its members, as Dovecot's parser returns them: an
// empty group, or one that ends the list, thus shows as unparsed.
func (l *addrLexer) address() ([]addrItem, bool) {
	start := l.i
	// A phrase followed by ':' is a group; by '<' a name-addr.
	var words []string
	for {
		w, _, ok := l.word()
		if !ok {
			break
		}
		words = append(words, w)
	}
	l.skipCFWS()
	if l.i < len(l.s) {
		switch l.s[l.i] {
		case ':':
			l.i++
			out := []addrItem{{}}
			for {
				l.skipCFWS()
				if l.i >= len(l.s) {
					return append(out, addrItem{}), true
				}
				switch l.s[l.i] {
				case ';':
					l.i++
					return append(out, addrItem{}), true
				case ',':
					l.i++
					continue
				}
				a, ok := l.mailbox()
				if !ok {
					return out, false
				}
				out = append(out, addrItem{addr: a, valid: true})
			}
		case '<':
			l.i++
			a, ok := l.angle()
			return []addrItem{{addr: a, valid: true}}, ok
		}
	}
	l.i = start
	a, ok := l.mailbox()
	return []addrItem{{addr: a, valid: true}}, ok
}

func (l *addrLexer) mailbox() (mailAddr, bool) {
	start := l.i
	for {
		if _, _, ok := l.word(); !ok {
			break
		}
	}
	l.skipCFWS()
	if l.i < len(l.s) && l.s[l.i] == '<' {
		l.i++
		return l.angle()
	}
	l.i = start
	return l.addrSpec()
}

// angle reads [route] addr-spec ">" after "<".
func (l *addrLexer) angle() (mailAddr, bool) {
	l.skipCFWS()
	if l.i < len(l.s) && l.s[l.i] == '@' {
		// obsolete route: @a,@b:
		end := strings.IndexByte(l.s[l.i:], ':')
		if end < 0 {
			return mailAddr{}, false
		}
		l.i += end + 1
	}
	a, ok := l.addrSpec()
	if !ok {
		return a, false
	}
	l.skipCFWS()
	if l.i >= len(l.s) || l.s[l.i] != '>' {
		return a, false
	}
	l.i++
	return a, true
}

func (l *addrLexer) addrSpec() (mailAddr, bool) {
	var local strings.Builder
	for {
		w, quoted, ok := l.word()
		if !ok {
			return mailAddr{}, false
		}
		_ = quoted
		local.WriteString(w)
		l.skipCFWS()
		if l.i < len(l.s) && l.s[l.i] == '.' {
			local.WriteByte('.')
			l.i++
			continue
		}
		break
	}
	if l.i >= len(l.s) || l.s[l.i] != '@' {
		return mailAddr{}, false
	}
	l.i++
	l.skipCFWS()
	if l.i < len(l.s) && l.s[l.i] == '[' {
		end := strings.IndexByte(l.s[l.i:], ']')
		if end < 0 {
			return mailAddr{}, false
		}
		d := l.s[l.i : l.i+end+1]
		l.i += end + 1
		return mailAddr{local: local.String(), domain: d}, true
	}
	d, quoted, ok := l.word()
	if !ok || quoted || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
		return mailAddr{}, false
	}
	return mailAddr{local: local.String(), domain: d}, local.Len() > 0
}

// parseAddrSpec reads a bare local@domain, as redirect takes it.
func parseAddrSpec(s string) (mailAddr, bool) {
	l := &addrLexer{s: s}
	a, ok := l.addrSpec()
	l.skipCFWS()
	return a, ok && l.i == len(s)
}

// parseAddressLoose reads one address, bare or "Name <local@domain>".
func parseAddressLoose(s string) (mailAddr, bool) {
	as := parseAddressList(s)
	if len(as) != 1 || !as[0].valid {
		return mailAddr{}, false
	}
	return as[0].addr, true
}

// addressPart returns part of a; ok false when the part does not exist
// (no detail without a separator).
func addressPart(a mailAddr, p addrPart, sep string) (string, bool) {
	switch p {
	case partLocal:
		return a.local, true
	case partDomain:
		return a.domain, true
	case partUser, partDetail:
		if sep == "" {
			sep = "+"
		}
		user, detail, found := strings.Cut(a.local, sep)
		if p == partUser {
			return user, true
		}
		return detail, found
	}
	return a.String(), true
}
