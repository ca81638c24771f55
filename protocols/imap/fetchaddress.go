package imap

import (
	"strings"

	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// ENVELOPE's address lists, read as Dovecot's message-address parser
// reads them (RFC 5322 with its obsolete forms): groups become a start
// marker (the group's name as mailbox), their members and an end marker;
// a source route is the address's adl; a comment after a bare addr-spec
// is its display name; what an address lacks is filled with
// MISSING_MAILBOX and MISSING_DOMAIN; encoded-words are not decoded. An
// empty list element between commas is an address with both parts
// missing. The reader never fails and each step advances, so a hostile
// value costs time linear in its length.

const (
	envMissingMailbox = "MISSING_MAILBOX"
	envMissingDomain  = "MISSING_DOMAIN"
)

type addrLexer struct {
	s       string
	i       int
	comment string // the last comment skipped
	// bad: a quoted string ran to the end; the element has neither
	// name nor address, as Dovecot reads it.
	bad bool
}

func (l *addrLexer) peek() byte {
	if l.i < len(l.s) {
		return l.s[l.i]
	}
	return 0
}

func (l *addrLexer) cfws() {
	i, c, ok := skipCFWSComment(l.s, l.i)
	l.i = i
	if ok {
		l.comment = collapseSpace(c)
	}
}

// isAtext: RFC 5322 atext, with 8-bit octets (UTF-8 headers).
func isAtext(c byte) bool {
	if c >= 0x80 {
		return true
	}
	if c <= ' ' || c == 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>[]:;@\,."`, rune(c))
}

func (l *addrLexer) atom() string {
	start := l.i
	for l.i < len(l.s) && isAtext(l.s[l.i]) {
		l.i++
	}
	a := l.s[start:l.i]
	l.cfws()
	return a
}

func (l *addrLexer) quoted() string {
	v, j, ok := quotedString(l.s, l.i)
	l.i = j
	l.bad = l.bad || !ok
	l.cfws()
	return v
}

// word reads an atom or a quoted string; "" when there is none.
func (l *addrLexer) word() (string, bool) {
	switch c := l.peek(); {
	case c == '"':
		return l.quoted(), true
	case c != 0 && isAtext(c):
		return l.atom(), true
	}
	return "", false
}

// phrase reads words joined by one space, and obsolete dots joined to
// the word before ("A. B. Name").
func (l *addrLexer) phrase() string {
	var b strings.Builder
	for {
		if l.peek() == '.' {
			l.i++
			l.cfws()
			b.WriteByte('.')
			continue
		}
		w, ok := l.word()
		if !ok {
			return b.String()
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
}

// dotted reads words and dots, as a local part or a domain; obsolete
// forms ("us..er", "user.") included.
func (l *addrLexer) dotted() string {
	var b strings.Builder
	afterWord := false
	for {
		if l.peek() == '.' {
			l.i++
			l.cfws()
			b.WriteByte('.')
			afterWord = false
			continue
		}
		if afterWord {
			return b.String() // words need a dot between them
		}
		w, ok := l.word()
		if !ok {
			return b.String()
		}
		b.WriteString(w)
		afterWord = true
	}
}

func (l *addrLexer) domain() string {
	if l.peek() == '[' {
		start := l.i
		for l.i < len(l.s) && l.s[l.i] != ']' {
			l.i++
		}
		if l.i == len(l.s) {
			return "" // unterminated: the domain is missing
		}
		l.i++
		d := l.s[start:l.i]
		l.cfws()
		return d
	}
	return l.dotted()
}

// addrSpec reads local-part ["@" domain].
func (l *addrLexer) addrSpec() (mailbox, host string, at bool) {
	mailbox = l.dotted()
	if l.peek() == '@' {
		l.i++
		l.cfws()
		at = true
		host = l.domain()
	}
	return mailbox, host, at
}

// route reads an obsolete route "@a,@b:" inside angle brackets.
func (l *addrLexer) route() string {
	var parts []string
	for l.peek() == '@' {
		l.i++
		l.cfws()
		parts = append(parts, "@"+l.domain())
		for l.peek() == ',' {
			l.i++
			l.cfws()
		}
	}
	if l.peek() == ':' {
		l.i++
		l.cfws()
	}
	return strings.Join(parts, ",")
}

func fillAddress(a wire.Address) wire.Address {
	if a.Mailbox == "" {
		a.Mailbox = envMissingMailbox
	}
	if a.Host == "" {
		a.Host = envMissingDomain
	}
	return a
}

// mailbox reads one mailbox (name-addr or addr-spec) up to a ',', ';'
// or the end.
func (l *addrLexer) mailbox(phrase string, havePhrase bool) wire.Address {
	a := l.mailbox1(phrase, havePhrase)
	if l.bad {
		return fillAddress(wire.Address{})
	}
	return a
}

func (l *addrLexer) mailbox1(phrase string, havePhrase bool) wire.Address {
	if !havePhrase {
		start := l.i
		phrase = l.phrase()
		if l.peek() != '<' {
			// An addr-spec, or what is left of one: a comment after it
			// is the name; a lone word without "@" is a mailbox without
			// a domain, but a lone quoted string or several words are a
			// name without an address.
			l.i = start
			l.comment = ""
			quoted := l.peek() == '"'
			var a wire.Address
			var at bool
			a.Mailbox, a.Host, at = l.addrSpec()
			if l.comment != "" {
				a.Name = l.comment
			} else if !at {
				if rest := l.phrase(); rest != "" {
					a.Name, a.Mailbox = a.Mailbox+" "+rest, ""
				} else if quoted && a.Mailbox != "" {
					a.Name, a.Mailbox = a.Mailbox, ""
				}
			}
			return fillAddress(a)
		}
	}
	var a wire.Address
	a.Name = phrase
	if l.peek() == '<' {
		l.i++
		l.cfws()
		if l.peek() == '@' {
			a.Adl = l.route()
		}
		a.Mailbox, a.Host, _ = l.addrSpec()
		for l.i < len(l.s) && l.s[l.i] != '>' && l.s[l.i] != ',' && l.s[l.i] != ';' {
			l.i++
		}
		if l.peek() == '>' {
			l.i++
		}
		l.cfws()
	}
	return fillAddress(a)
}

// parseAddressList reads an address-list header value. Like Dovecot's
// parser it stops at the first element followed by something other
// than a separator, keeping what it has read (and closing a group).
func parseAddressList(v string) []wire.Address {
	l := &addrLexer{s: v}
	l.cfws()
	if l.i >= len(l.s) {
		return nil
	}
	var out []wire.Address
	for l.i < len(l.s) {
		start := l.i
		phrase := l.phrase()
		if l.peek() == ':' && phrase != "" {
			// A group.
			l.i++
			l.cfws()
			out = append(out, wire.Address{Mailbox: phrase})
			for l.i < len(l.s) && l.peek() != ';' {
				if l.peek() == ',' {
					l.i++
					l.cfws()
					continue
				}
				out = append(out, l.mailbox("", false))
				if c := l.peek(); l.i < len(l.s) && c != ',' && c != ';' {
					return append(out, wire.Address{})
				}
			}
			if l.peek() == ';' {
				l.i++
			}
			l.cfws()
			out = append(out, wire.Address{})
		} else {
			l.i = start
			out = append(out, l.mailbox("", false))
		}
		if l.i >= len(l.s) {
			break
		}
		if l.peek() != ',' {
			return out
		}
		l.i++
		l.cfws()
	}
	return out
}

// collapseSpace folds runs of white space into one space.
func collapseSpace(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
