package sieve

import (
	"strconv"
	"strings"
)

// match.go: match types (RFC 5228 section 2.7.1, relational RFC 5231)
// and comparators (RFC 4790: i;octet, i;ascii-casemap, i;ascii-numeric).

type matchType int

const (
	matchIs matchType = iota + 1
	matchContains
	matchMatches
	matchValue
	matchCount
)

type matcher struct {
	typ matchType
	rel string // :value and :count relation
	cmp string // comparator name
}

// compare orders a and b by the comparator.
func compare(cmp, a, b string) int {
	switch cmp {
	case "i;octet":
		return strings.Compare(a, b)
	case "i;ascii-numeric":
		return compareNumeric(a, b)
	}
	// Pigeonhole folds to lower case, which orders "[" before "m".
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := lower(a[i]), lower(b[i])
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c - 'A' + 'a'
	}
	return c
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// compareNumeric compares the leading digits of a and b as unsigned
// numbers; a string that does not start with a digit is positive
// infinity (RFC 4790 section 9.1).
func compareNumeric(a, b string) int {
	na, nb := leadingDigits(a), leadingDigits(b)
	switch {
	case na == "" && nb == "":
		return 0
	case na == "":
		return 1
	case nb == "":
		return -1
	}
	na, nb = strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
	if len(na) != len(nb) {
		if len(na) < len(nb) {
			return -1
		}
		return 1
	}
	return strings.Compare(na, nb)
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i]
}

func relHolds(rel string, c int) bool {
	switch rel {
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	case "le":
		return c <= 0
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	}
	return false
}

// test says whether any value matches any key; a :matches that succeeds
// sets the match variables when the script uses variables.
func (r *runner) test(m matcher, values []string, keys []string) bool {
	if m.typ == matchCount {
		n := strconv.Itoa(len(values))
		for _, k := range keys {
			if relHolds(m.rel, compare(m.cmp, n, k)) {
				return true
			}
		}
		return false
	}
	for _, v := range values {
		for _, k := range keys {
			// What the comparison may cost at most: :matches is
			// bounded by value × pattern, the others by value + key.
			if m.typ == matchMatches {
				r.spend((len(v) + 1) * (len(k) + 1))
			} else {
				r.spend(len(v) + len(k) + 1)
			}
			switch m.typ {
			case matchIs:
				if compare(m.cmp, v, k) == 0 {
					return true
				}
			case matchValue:
				if relHolds(m.rel, compare(m.cmp, v, k)) {
					return true
				}
			case matchContains:
				if contains(v, k, m.cmp == "i;ascii-casemap") {
					return true
				}
			case matchMatches:
				var caps []string
				var cp *[]string
				if r.s.exts["variables"] {
					cp = &caps
				}
				if glob(k, v, m.cmp == "i;ascii-casemap", cp) {
					if cp != nil {
						r.matches = caps
					}
					return true
				}
			}
		}
	}
	return false
}

func contains(s, sub string, fold bool) bool {
	if !fold {
		return strings.Contains(s, sub)
	}
	return indexFold(s, sub, 0) >= 0
}

// indexFold finds sub in s at or after from, ASCII case-insensitively.
func indexFold(s, sub string, from int) int {
	for i := from; i+len(sub) <= len(s); i++ {
		j := 0
		for j < len(sub) && upper(s[i+j]) == upper(sub[j]) {
			j++
		}
		if j == len(sub) {
			return i
		}
	}
	return -1
}

// patTok is one element of a :matches pattern.
type patTok struct {
	any  bool // '?': one octet
	star bool // '*': any run of characters
	c    byte // a literal octet otherwise
}

func compilePattern(p string) []patTok {
	toks := make([]patTok, 0, len(p))
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*':
			toks = append(toks, patTok{star: true})
		case '?':
			toks = append(toks, patTok{any: true})
		case '\\':
			if i+1 < len(p) {
				i++
			}
			toks = append(toks, patTok{c: p[i]})
		default:
			toks = append(toks, patTok{c: c})
		}
	}
	return toks
}

// segAt tries the star-free tokens seg at s[i:]; it returns the end of
// the match, and appends what each '?' matched to caps.
func segAt(seg []patTok, s string, i int, fold bool, caps *[]string) (int, bool) {
	for _, t := range seg {
		if i >= len(s) {
			return 0, false
		}
		if t.any {
			// One octet: i;octet and i;ascii-casemap compare octets
			// (RFC 4790), and Pigeonhole's '?' takes one.
			if caps != nil {
				*caps = append(*caps, s[i:i+1])
			}
			i++
			continue
		}
		c := s[i]
		if c != t.c && !(fold && upper(c) == upper(t.c)) {
			return 0, false
		}
		i++
	}
	return i, true
}

// glob matches s against the pattern p. Each segment between stars is
// matched at its leftmost place, which finds a match whenever one exists
// and makes each star match as little as possible (as Pigeonhole does);
// the cost is at most len(p) × len(s), whatever the pattern. caps, when
// not nil, receives ${0} and then what each wildcard matched.
func glob(p, s string, fold bool, caps *[]string) bool {
	toks := compilePattern(p)
	var segs [][]patTok
	start := 0
	for i, t := range toks {
		if t.star {
			segs = append(segs, toks[start:i])
			start = i + 1
		}
	}
	segs = append(segs, toks[start:])
	var cs []string
	var cp *[]string
	if caps != nil {
		cs = []string{s}
		cp = &cs
	}
	if len(segs) == 1 {
		end, ok := segAt(segs[0], s, 0, fold, cp)
		if !ok || end != len(s) {
			return false
		}
		if caps != nil {
			*caps = cs
		}
		return true
	}
	pos, ok := segAt(segs[0], s, 0, fold, cp)
	if !ok {
		return false
	}
	for k := 1; k < len(segs); k++ {
		last := k == len(segs)-1
		found := false
		if last && len(segs[k]) == 0 {
			if cp != nil {
				cs = append(cs, s[pos:])
			}
			pos, found = len(s), true
		}
		for i := pos; !found && i <= len(s); i++ {
			mark := len(cs)
			end, ok := segAt(segs[k], s, i, fold, cp)
			if ok && (!last || end == len(s)) {
				if cp != nil {
					// The star's capture goes before the segment's '?'s.
					q := append([]string(nil), cs[mark:]...)
					cs = append(cs[:mark], s[pos:i])
					cs = append(cs, q...)
				}
				pos, found = end, true
				break
			}
			if cp != nil {
				cs = cs[:mark]
			}
		}
		if !found {
			return false
		}
	}
	if caps != nil {
		*caps = cs
	}
	return true
}
