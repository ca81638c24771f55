package sortthread

import "time"

// ParseDate reads a Date header value as Dovecot does, which is laxer than
// RFC 5322 in some places and stricter in others: an optional three-letter
// weekday that must be followed by a comma, a one or two digit day, a month
// name (only its first three letters count), a two-digit year (70–99 is
// 19xx, the rest 20xx) or a four-digit year from 1900, hh:mm[:ss] with ":"
// or "." between, then a zone. A missing or unknown zone is UTC; comments
// may sit between the tokens. The time is in the zone the value names.
// It reports ok=false for anything else, and
// the caller then sorts by the internal date (RFC 5256 section 2.2).
func ParseDate(s string) (t time.Time, ok bool) {
	p := lexer{s: s}
	p.skipCFWS()
	tok := p.atom()
	if tok == "" {
		return time.Time{}, false
	}
	if len(tok) == 3 {
		if !p.eat(',') {
			return time.Time{}, false
		}
		p.skipCFWS()
		if tok = p.atom(); tok == "" {
			return time.Time{}, false
		}
	}
	day, ok := digits(tok, 1, 2)
	if !ok {
		return time.Time{}, false
	}
	tok = p.atom()
	if len(tok) < 3 {
		return time.Time{}, false
	}
	month := 0
	for i, m := range [...]string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"} {
		if equalFoldASCII(tok[:3], m) {
			month = i + 1
			break
		}
	}
	if month == 0 {
		return time.Time{}, false
	}
	tok = p.atom()
	year, ok := digits(tok, 2, 4)
	if !ok || len(tok) == 3 {
		return time.Time{}, false
	}
	if len(tok) == 2 {
		year += 1900
		if year < 1970 {
			year += 100
		}
	} else if year < 1900 {
		return time.Time{}, false
	}
	hour, ok := digits(p.atom(), 1, 2)
	if !ok || !p.eatTimeSep() {
		return time.Time{}, false
	}
	p.skipCFWS()
	min, ok := digits(p.atom(), 2, 2)
	if !ok {
		return time.Time{}, false
	}
	sec := 0
	if p.eatTimeSep() {
		p.skipCFWS()
		if sec, ok = digits(p.atom(), 2, 2); !ok {
			return time.Time{}, false
		}
	}
	offset := 0
	if zone := p.atom(); zone != "" {
		offset = zoneOffset(zone)
	}
	// The zone the header names, so that SEARCH's SENTON can take the
	// day as the sender wrote it.
	loc := time.UTC
	if offset != 0 {
		loc = time.FixedZone("", offset*60)
	}
	return time.Date(year, time.Month(month), day, hour, min, sec, 0, loc), true
}

// zoneOffset is a zone's offset from UTC in minutes; unknown zones, the
// military letters among them, are UTC.
func zoneOffset(z string) int {
	if len(z) == 5 && (z[0] == '+' || z[0] == '-') {
		hh, ok1 := digits(z[1:3], 2, 2)
		mm, ok2 := digits(z[3:5], 2, 2)
		if ok1 && ok2 {
			off := hh*60 + mm
			if z[0] == '-' {
				off = -off
			}
			return off
		}
		return 0
	}
	switch {
	case equalFoldASCII(z, "EST"), equalFoldASCII(z, "CDT"):
		return -5 * 60
	case equalFoldASCII(z, "EDT"):
		return -4 * 60
	case equalFoldASCII(z, "CST"), equalFoldASCII(z, "MDT"):
		return -6 * 60
	case equalFoldASCII(z, "MST"), equalFoldASCII(z, "PDT"):
		return -7 * 60
	case equalFoldASCII(z, "PST"):
		return -8 * 60
	}
	return 0
}

// digits parses an all-digit token of min to max characters.
func digits(s string, min, max int) (int, bool) {
	if len(s) < min || len(s) > max {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
