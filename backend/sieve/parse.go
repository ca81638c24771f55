package sieve

import (
	"bytes"
	"fmt"
	"strings"
)

// The grammar of RFC 5228 section 8: a script is commands; a command is
// an identifier, arguments (tags, numbers, string lists), an optional test
// or test list, and ";" or a block. The parser knows no command's meaning:
// compile.go checks names and arguments against the signatures.

type command struct {
	name  string
	line  int
	args  []arg
	tests []*test
	block []*command
	// hasBlock distinguishes "if x {}" from "if x;".
	hasBlock bool
	// testList says the tests came in parentheses.
	testList bool
}

type test struct {
	name  string
	line  int
	args  []arg
	tests []*test
	// list says the tests came in parentheses (allof/anyof).
	list bool
}

type argKind int

const (
	argTag argKind = iota + 1
	argNumber
	argString // a single string, not in brackets
	argList   // a bracketed string list
)

type arg struct {
	kind argKind
	line int
	tag  string // lower-cased, with the colon
	num  int64
	strs []string
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokTag
	tokNumber
	tokString
	tokPunct
)

type token struct {
	kind tokKind
	line int
	text string // identifier, tag, string value, or the punctuation
	num  int64
}

type parser struct {
	src     []byte
	pos     int
	line    int
	tok     token
	maxList int
	maxNest int
}

func (p *parser) errf(line int, format string, a ...any) error {
	return &Error{Line: line, Msg: fmt.Sprintf(format, a...)}
}

// next reads the next token into p.tok.
func (p *parser) next() error {
	if err := p.skipSpace(); err != nil {
		return err
	}
	if p.pos >= len(p.src) {
		p.tok = token{kind: tokEOF, line: p.line}
		return nil
	}
	c := p.src[p.pos]
	line := p.line
	switch {
	case isAlpha(c) || c == '_':
		start := p.pos
		for p.pos < len(p.src) && (isAlpha(p.src[p.pos]) || isDigit(p.src[p.pos]) || p.src[p.pos] == '_') {
			p.pos++
		}
		word := string(p.src[start:p.pos])
		if strings.EqualFold(word, "text") && p.pos < len(p.src) && p.src[p.pos] == ':' {
			p.pos++
			s, err := p.multiline(line)
			if err != nil {
				return err
			}
			p.tok = token{kind: tokString, line: line, text: s}
			return nil
		}
		p.tok = token{kind: tokIdent, line: line, text: word}
	case c == ':':
		p.pos++
		start := p.pos
		if p.pos >= len(p.src) || !(isAlpha(p.src[p.pos]) || p.src[p.pos] == '_') {
			return p.errf(line, "expected a tag name after ':'")
		}
		for p.pos < len(p.src) && (isAlpha(p.src[p.pos]) || isDigit(p.src[p.pos]) || p.src[p.pos] == '_') {
			p.pos++
		}
		p.tok = token{kind: tokTag, line: line, text: ":" + strings.ToLower(string(p.src[start:p.pos]))}
	case isDigit(c):
		var n int64
		for p.pos < len(p.src) && isDigit(p.src[p.pos]) {
			d := int64(p.src[p.pos] - '0')
			if n > (1<<62-d)/10 {
				return p.errf(line, "number is too large")
			}
			n = n*10 + d
			p.pos++
		}
		if p.pos < len(p.src) {
			shift := 0
			switch p.src[p.pos] {
			case 'k', 'K':
				shift = 10
			case 'm', 'M':
				shift = 20
			case 'g', 'G':
				shift = 30
			}
			if shift > 0 {
				p.pos++
				if n > (1<<62)>>shift {
					return p.errf(line, "number is too large")
				}
				n <<= shift
			}
		}
		if p.pos < len(p.src) && (isAlpha(p.src[p.pos]) || p.src[p.pos] == '_') {
			return p.errf(line, "unexpected character %q after a number", p.src[p.pos])
		}
		p.tok = token{kind: tokNumber, line: line, num: n}
	case c == '"':
		s, err := p.quoted(line)
		if err != nil {
			return err
		}
		p.tok = token{kind: tokString, line: line, text: s}
	case strings.IndexByte("[](){},;", c) >= 0:
		p.pos++
		p.tok = token{kind: tokPunct, line: line, text: string(c)}
	default:
		return p.errf(line, "unexpected character %q", c)
	}
	return nil
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// skipSpace skips white space, hash comments and bracket comments.
func (p *parser) skipSpace() error {
	for p.pos < len(p.src) {
		switch c := p.src[p.pos]; {
		case c == '\n':
			p.line++
			p.pos++
		case c == ' ' || c == '\t' || c == '\r':
			p.pos++
		case c == '#':
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		case c == '/' && p.pos+1 < len(p.src) && p.src[p.pos+1] == '*':
			line := p.line
			end := bytes.Index(p.src[p.pos+2:], []byte("*/"))
			if end < 0 {
				return p.errf(line, "unterminated comment")
			}
			p.line += bytes.Count(p.src[p.pos:p.pos+2+end], []byte("\n"))
			p.pos += 2 + end + 2
		default:
			return nil
		}
	}
	return nil
}

// quoted reads a quoted string: \" and \\ are escapes, and a backslash
// before any other character is dropped (RFC 5228 section 2.4.2).
func (p *parser) quoted(line int) (string, error) {
	p.pos++ // opening quote
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch c {
		case '"':
			p.pos++
			return b.String(), nil
		case '\\':
			if p.pos+1 >= len(p.src) {
				return "", p.errf(line, "unterminated string")
			}
			c = p.src[p.pos+1]
			p.pos++
		}
		if c == '\n' {
			p.line++
		}
		b.WriteByte(c)
		p.pos++
	}
	return "", p.errf(line, "unterminated string")
}

// multiline reads a text: string after "text:": white space and an
// optional hash comment up to the line end, then lines up to a line
// holding only "."; a leading ".." stands for ".". Lines end in CRLF or LF;
// the value keeps CRLF.
func (p *parser) multiline(line int) (string, error) {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t') {
		p.pos++
	}
	if p.pos < len(p.src) && p.src[p.pos] == '#' {
		for p.pos < len(p.src) && p.src[p.pos] != '\n' {
			p.pos++
		}
	}
	if p.pos < len(p.src) && p.src[p.pos] == '\r' {
		p.pos++
	}
	if p.pos >= len(p.src) || p.src[p.pos] != '\n' {
		return "", p.errf(line, "expected a line end after text:")
	}
	p.pos++
	p.line++
	var b strings.Builder
	for {
		if p.pos >= len(p.src) {
			return "", p.errf(line, "unterminated text: string (no line with a single '.')")
		}
		end := p.pos
		for end < len(p.src) && p.src[end] != '\n' {
			end++
		}
		l := string(p.src[p.pos:end])
		l = strings.TrimSuffix(l, "\r")
		if end < len(p.src) {
			end++
		}
		p.pos = end
		p.line++
		if l == "." {
			return b.String(), nil
		}
		if strings.HasPrefix(l, ".") {
			l = l[1:]
		}
		b.WriteString(l)
		b.WriteString("\r\n")
	}
}

func parse(src []byte, l Limits) ([]*command, error) {
	p := &parser{src: src, line: 1, maxList: l.MaxStringList, maxNest: l.MaxNesting}
	if err := p.next(); err != nil {
		return nil, err
	}
	cmds, err := p.commands(0)
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		return nil, p.errf(p.tok.line, "unexpected %s", p.tok.describe())
	}
	return cmds, nil
}

func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of script"
	case tokIdent:
		return "identifier '" + t.text + "'"
	case tokTag:
		return "tag '" + t.text + "'"
	case tokNumber:
		return fmt.Sprintf("number %d", t.num)
	case tokString:
		return "string"
	}
	return "'" + t.text + "'"
}

func (p *parser) punct(s string) bool { return p.tok.kind == tokPunct && p.tok.text == s }

func (p *parser) commands(depth int) ([]*command, error) {
	var cmds []*command
	for p.tok.kind == tokIdent {
		c, err := p.command(depth)
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, c)
	}
	return cmds, nil
}

func (p *parser) command(depth int) (*command, error) {
	c := &command{name: strings.ToLower(p.tok.text), line: p.tok.line}
	if err := p.next(); err != nil {
		return nil, err
	}
	args, tests, list, err := p.arguments(0)
	if err != nil {
		return nil, err
	}
	c.args, c.tests, c.testList = args, tests, list
	switch {
	case p.punct(";"):
		return c, p.next()
	case p.punct("{"):
		// The script's top level counts as the first level.
		if depth+1 >= p.maxNest {
			return nil, p.errf(p.tok.line, "blocks nested %d levels deep or more", p.maxNest)
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		block, err := p.commands(depth + 1)
		if err != nil {
			return nil, err
		}
		if !p.punct("}") {
			return nil, p.errf(p.tok.line, "expected a command or '}' but found %s", p.tok.describe())
		}
		c.block, c.hasBlock = block, true
		return c, p.next()
	}
	return nil, p.errf(p.tok.line, "expected ';' or '{' after command '%s' but found %s", c.name, p.tok.describe())
}

// arguments reads arguments, then an optional test or parenthesised
// test list.
func (p *parser) arguments(depth int) ([]arg, []*test, bool, error) {
	var args []arg
	for {
		switch {
		case p.tok.kind == tokTag:
			args = append(args, arg{kind: argTag, line: p.tok.line, tag: p.tok.text})
		case p.tok.kind == tokNumber:
			args = append(args, arg{kind: argNumber, line: p.tok.line, num: p.tok.num})
		case p.tok.kind == tokString:
			args = append(args, arg{kind: argString, line: p.tok.line, strs: []string{p.tok.text}})
		case p.punct("["):
			a, err := p.stringList()
			if err != nil {
				return nil, nil, false, err
			}
			args = append(args, a)
			continue
		default:
			goto tests
		}
		if err := p.next(); err != nil {
			return nil, nil, false, err
		}
	}
tests:
	switch {
	case p.tok.kind == tokIdent:
		t, err := p.test(depth + 1)
		if err != nil {
			return nil, nil, false, err
		}
		return args, []*test{t}, false, nil
	case p.punct("("):
		line := p.tok.line
		if err := p.next(); err != nil {
			return nil, nil, false, err
		}
		var tests []*test
		for {
			if p.tok.kind != tokIdent {
				return nil, nil, false, p.errf(p.tok.line, "expected a test but found %s", p.tok.describe())
			}
			t, err := p.test(depth + 1)
			if err != nil {
				return nil, nil, false, err
			}
			tests = append(tests, t)
			if len(tests) > p.maxList {
				return nil, nil, false, p.errf(line, "more than %d tests in a test list", p.maxList)
			}
			if p.punct(")") {
				return args, tests, true, p.next()
			}
			if !p.punct(",") {
				return nil, nil, false, p.errf(p.tok.line, "expected ',' or ')' in a test list but found %s", p.tok.describe())
			}
			if err := p.next(); err != nil {
				return nil, nil, false, err
			}
		}
	}
	return args, nil, false, nil
}

func (p *parser) test(depth int) (*test, error) {
	if depth >= p.maxNest {
		return nil, p.errf(p.tok.line, "tests nested %d levels deep or more", p.maxNest)
	}
	t := &test{name: strings.ToLower(p.tok.text), line: p.tok.line}
	if err := p.next(); err != nil {
		return nil, err
	}
	args, tests, list, err := p.arguments(depth)
	if err != nil {
		return nil, err
	}
	t.args, t.tests, t.list = args, tests, list
	return t, nil
}

func (p *parser) stringList() (arg, error) {
	a := arg{kind: argList, line: p.tok.line}
	if err := p.next(); err != nil {
		return a, err
	}
	for {
		if p.tok.kind != tokString {
			return a, p.errf(p.tok.line, "expected a string in a string list but found %s", p.tok.describe())
		}
		a.strs = append(a.strs, p.tok.text)
		if len(a.strs) > p.maxList {
			return a, p.errf(a.line, "string list longer than %d strings", p.maxList)
		}
		if err := p.next(); err != nil {
			return a, err
		}
		if p.punct("]") {
			return a, p.next()
		}
		if !p.punct(",") {
			return a, p.errf(p.tok.line, "expected ',' or ']' in a string list but found %s", p.tok.describe())
		}
		if err := p.next(); err != nil {
			return a, err
		}
	}
}
