package sieve

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// variables.go: strings with ${name} and ${N} references (RFC 5229),
// compiled once into literal and reference parts.

// maxVariableSize bounds a variable's value (Pigeonhole's
// sieve_variables_max_variable_size), so a loop of set cannot grow memory.
const maxVariableSize = 4096

// tmpl is a compiled string: a literal, or parts to join at run time.
type tmpl struct {
	s     string
	parts []tpart
}

type tpart struct {
	lit string
	// ref: variable name (lower case), or match number when num >= 0;
	// a name with a namespace expands to "" (none is supported).
	ref   bool
	name  string
	num   int
	space bool
}

func (t tmpl) literal() bool { return t.parts == nil }

func (c *compiler) tmpls(line int, ss []string) ([]tmpl, error) {
	out := make([]tmpl, len(ss))
	for i, s := range ss {
		t, err := c.tmpl(line, s)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// tmpl compiles s; without the variables extension every string is
// literal.
func (c *compiler) tmpl(_ int, s string) (tmpl, error) {
	if !c.vars || !strings.Contains(s, "${") {
		return tmpl{s: s}, nil
	}
	var parts []tpart
	lit := strings.Builder{}
	found := false
	for i := 0; i < len(s); {
		if !strings.HasPrefix(s[i:], "${") {
			lit.WriteByte(s[i])
			i++
			continue
		}
		// Only name characters may follow "${": scanning stops at the
		// first other one, so a string full of "${" costs linear time.
		j := i + 2
		for j < len(s) && (isAlpha(s[j]) || isDigit(s[j]) || s[j] == '_' || s[j] == '.') {
			j++
		}
		if j >= len(s) || s[j] != '}' {
			lit.WriteString("${")
			i += 2
			continue
		}
		p, ok := parseRef(s[i+2 : j])
		if !ok {
			lit.WriteString("${")
			i += 2
			continue
		}
		end := j - (i + 2)
		found = true
		if lit.Len() > 0 {
			parts = append(parts, tpart{lit: lit.String()})
			lit.Reset()
		}
		parts = append(parts, p)
		i += 2 + end + 1
	}
	if lit.Len() > 0 {
		parts = append(parts, tpart{lit: lit.String()})
	}
	if !found {
		return tmpl{s: s}, nil
	}
	return tmpl{s: s, parts: parts}, nil
}

// parseRef reads what is between ${ and }: digits (a match variable) or
// identifiers joined by dots (a variable, maybe in a namespace).
func parseRef(s string) (tpart, bool) {
	if s == "" {
		return tpart{}, false
	}
	if isDigit(s[0]) {
		for i := 0; i < len(s); i++ {
			if !isDigit(s[i]) {
				return tpart{}, false
			}
		}
		n, err := strconv.Atoi(s)
		if err != nil || n > 1<<20 {
			n = 1 << 20
		}
		return tpart{ref: true, num: n}, true
	}
	segs := strings.Split(s, ".")
	for _, seg := range segs {
		if !validVarName(seg) {
			return tpart{}, false
		}
	}
	return tpart{ref: true, num: -1, name: strings.ToLower(s), space: len(segs) > 1}, true
}

// expand returns t's value in r's variables.
func (r *runner) expand(t tmpl) string {
	if t.parts == nil {
		return t.s
	}
	var b strings.Builder
	for _, p := range t.parts {
		switch {
		case !p.ref:
			b.WriteString(p.lit)
		case p.space:
		case p.num >= 0:
			if p.num < len(r.matches) {
				b.WriteString(r.matches[p.num])
			}
		default:
			b.WriteString(r.vars[p.name])
		}
	}
	return b.String()
}

func (r *runner) expandAll(ts []tmpl) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = r.expand(t)
	}
	return out
}

// truncate cuts s to at most n bytes on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// applyModifiers applies set's modifiers, already in precedence order.
func applyModifiers(v string, mods []string) string {
	for _, m := range mods {
		switch m {
		case ":lower":
			v = strings.ToLower(v)
		case ":upper":
			v = strings.ToUpper(v)
		case ":lowerfirst", ":upperfirst":
			if r, n := utf8.DecodeRuneInString(v); n > 0 {
				f := strings.ToLower
				if m == ":upperfirst" {
					f = strings.ToUpper
				}
				v = f(string(r)) + v[n:]
			}
		case ":quotewildcard":
			var b strings.Builder
			for i := 0; i < len(v); i++ {
				if v[i] == '*' || v[i] == '?' || v[i] == '\\' {
					b.WriteByte('\\')
				}
				b.WriteByte(v[i])
			}
			v = b.String()
		case ":length":
			v = strconv.Itoa(utf8.RuneCountInString(v))
		}
	}
	return v
}
