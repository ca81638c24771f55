package sortthread

import (
	"strings"
	"time"
)

// The readers below serve SEARCH, which compares header text the way
// Dovecot does: with the same encoded-word decoding, the same casemap and,
// for address fields, the same lax address parser as SORT, so that one
// parser reads each format.

// Fold is the i;unicode-casemap form of s (see casemap) that SEARCH
// compares: a needle and a haystack match when one's fold contains the
// other's.
func Fold(s string) string { return casemap(s) }

// DecodeHeader turns the RFC 2047 encoded-words of a header value into
// UTF-8, dropping the white space between adjacent words; a malformed
// word stays as it is and invalid UTF-8 becomes U+FFFD.
func DecodeHeader(s string) string { return validUTF8(decodeWords(s)) }

// AddressText rewrites an address-list header value (From, To, Cc, Bcc)
// the way Dovecot writes it before a SEARCH FROM/TO/CC/BCC compares it:
// comments and folding gone, "Name <mailbox@domain>" or "<mailbox@domain>"
// per address, ", " between them, "group: a, b;" for groups, missing
// parts filled in as SORT fills them, then encoded-words decoded. So
// "user@host (Real Name)" reads "Real Name <user@host>" and
// "user (c)@ (c) host" reads "<user@host>".
func AddressText(raw string) string {
	p := lexer{s: raw}
	var b strings.Builder
	inGroup, first := false, true
	sep := func() {
		if !first {
			b.WriteString(", ")
		}
		first = false
	}
	for {
		p.skipCFWS()
		if p.i >= len(p.s) {
			break
		}
		switch p.peek() {
		case ',':
			p.i++
			continue
		case ';':
			p.i++
			if inGroup {
				b.WriteByte(';')
				inGroup = false
			}
			continue
		}
		start := p.i
		a := p.address()
		if a.group {
			p.eat(':')
			sep()
			writePhrase(&b, a.mailbox)
			b.WriteString(": ")
			inGroup, first = true, true
			continue
		}
		sep()
		if a.name != "" {
			writePhrase(&b, a.name)
			b.WriteByte(' ')
		}
		b.WriteByte('<')
		b.WriteString(a.mailbox)
		b.WriteByte('@')
		b.WriteString(a.domain)
		b.WriteByte('>')
		// Whatever follows the address up to the next separator is
		// junk Dovecot skips too.
		for p.i < len(p.s) && p.s[p.i] != ',' && p.s[p.i] != ';' {
			if p.s[p.i] == '"' {
				p.quoted()
				continue
			}
			p.i++
		}
		if p.i == start {
			p.i++
		}
	}
	if inGroup {
		b.WriteByte(';')
	}
	return DecodeHeader(b.String())
}

// writePhrase writes a display name, quoted when it holds more than atoms
// and spaces; encoded-words stay bare, as RFC 2047 wants them.
func writePhrase(b *strings.Builder, s string) {
	plain := strings.Contains(s, "=?")
	for i := 0; i < len(s) && !plain; i++ {
		if c := s[i]; c != ' ' && !isAtext(c) {
			b.WriteByte('"')
			for j := 0; j < len(s); j++ {
				if s[j] == '"' || s[j] == '\\' {
					b.WriteByte('\\')
				}
				b.WriteByte(s[j])
			}
			b.WriteByte('"')
			return
		}
	}
	b.WriteString(s)
}

// SentDay is the day SEARCH's SENTBEFORE, SENTON and SENTSINCE compare: the
// Date header's calendar day in its own zone, read as Dovecot reads it. A
// missing or unreadable Date is the epoch's day, and a date before 1970
// wraps around to after 2106 (Dovecot keeps sent dates in 32 unsigned
// bits, as SORT does).
func SentDay(date string) time.Time {
	var u int64
	if t, ok := ParseDate(date); ok {
		if u = int64(uint32(t.Unix())); u != 0 {
			_, off := t.Zone()
			u += int64(off)
		}
	}
	y, m, d := time.Unix(u, 0).UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
