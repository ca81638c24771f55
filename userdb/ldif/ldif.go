// Package ldif reads LDIF (RFC 2849) content files: the directory data that
// `vmaild ldif import` loads into an account backend and that tests load into
// a private slapd.
//
// Only entries are read: content records, and change records with
// "changetype: add" (what ldapadd accepts). Modify, delete and modrdn
// records, controls and "attr:< URL" values are refused with an error naming
// the line, never skipped silently: an import that quietly drops half a file
// is worse than one that stops. Limits on line and record size keep a
// hostile or broken file from eating memory.
package ldif

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	goldap "github.com/go-ldap/ldap/v3"
)

// Error classes; every error returned by Reader.Next is an *Error wrapping
// one of these.
var (
	// ErrSyntax means the file is not valid LDIF.
	ErrSyntax = errors.New("syntax error")
	// ErrUnsupported means valid LDIF this reader does not handle (change
	// records other than add, controls, URL values).
	ErrUnsupported = errors.New("unsupported")
	// ErrTooLarge means a line or record exceeds the Limits.
	ErrTooLarge = errors.New("limit exceeded")
)

// Error is a problem at a line of the input.
type Error struct {
	Line int // 1-based line number where the offending (logical) line starts
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("ldif: line %d: %v", e.Line, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Attr is one attribute of an entry with all its values, in file order.
type Attr struct {
	// Name is the attribute description as first spelled in the file,
	// options included ("cn;lang-de").
	Name   string
	Values []string
}

// Entry is one LDIF record.
type Entry struct {
	DN string
	// Attrs in the order they first appear; values of an attribute named
	// more than once (case-insensitively) are merged into one Attr.
	Attrs []Attr
	// Line is the line of the record's "dn:".
	Line int
}

// Values returns the values of the attribute named name
// (case-insensitively), or nil.
func (e *Entry) Values(name string) []string {
	for _, a := range e.Attrs {
		if strings.EqualFold(a.Name, name) {
			return a.Values
		}
	}
	return nil
}

// Limits bound what one file may make the reader hold. Zero fields take the
// defaults.
type Limits struct {
	// MaxLine is the longest physical line in bytes (default 1 MiB).
	MaxLine int
	// MaxEntry is the largest record in bytes, folded lines joined
	// (default 4 MiB).
	MaxEntry int
}

const (
	maxDescription  = 256
	defaultMaxLine  = 1 << 20
	defaultMaxEntry = 4 << 20
)

func (l Limits) withDefaults() Limits {
	if l.MaxLine <= 0 {
		l.MaxLine = defaultMaxLine
	}
	if l.MaxEntry <= 0 {
		l.MaxEntry = defaultMaxEntry
	}
	return l
}

// Reader reads entries one at a time, so a large file never has to fit in
// memory at once.
type Reader struct {
	br  *bufio.Reader
	lim Limits

	lineNo  int    // number of the last physical line read
	peeked  []byte // a physical line read ahead, if havePeek
	peekNo  int
	havPeek bool
	started bool  // the first record (or version line) has been read
	err     error // sticky: after an error, Next keeps returning it
}

// NewReader returns a Reader with default limits.
func NewReader(r io.Reader) *Reader { return NewReaderLimits(r, Limits{}) }

// NewReaderLimits returns a Reader with the given limits.
func NewReaderLimits(r io.Reader, lim Limits) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), lim: lim.withDefaults()}
}

// Parse reads every entry of r with default limits.
func Parse(r io.Reader) ([]Entry, error) {
	lr := NewReader(r)
	var out []Entry
	for {
		e, err := lr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
}

// logical is one unfolded line with the number of its first physical line.
type logical struct {
	text []byte
	no   int
}

// Next returns the next entry, or io.EOF after the last one.
func (r *Reader) Next() (Entry, error) {
	if r.err != nil {
		return Entry{}, r.err
	}
	e, err := r.next()
	if err != nil {
		r.err = err
	}
	return e, err
}

func (r *Reader) next() (Entry, error) {
	for {
		lines, err := r.record()
		if err != nil {
			return Entry{}, err
		}
		if lines == nil {
			return Entry{}, io.EOF
		}
		if !r.started {
			// "version: 1" may only open the file (RFC 2849 ldif-content).
			r.started = true
			if hasKey(lines[0].text, "version") {
				if err := checkVersion(lines[0]); err != nil {
					return Entry{}, err
				}
				if lines = lines[1:]; len(lines) == 0 {
					continue
				}
			}
		}
		return parseRecord(lines)
	}
}

func checkVersion(l logical) error {
	_, v, err := splitLine(l)
	if err != nil {
		return err
	}
	if strings.TrimSpace(v) != "1" {
		return &Error{l.no, fmt.Errorf("%w: LDIF version %q, only 1 is defined", ErrUnsupported, v)}
	}
	return nil
}

// hasKey reports whether a logical line starts with "key:", ignoring case.
func hasKey(line []byte, key string) bool {
	return len(line) > len(key) && line[len(key)] == ':' && strings.EqualFold(string(line[:len(key)]), key)
}

// record returns the logical lines of the next record, comments removed,
// or nil at the end of input.
func (r *Reader) record() ([]logical, error) {
	var lines []logical
	size := 0
	for {
		line, no, err := r.physical()
		if err == io.EOF {
			return lines, nil
		}
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			if lines != nil {
				return lines, nil
			}
			continue // blank lines between records
		}
		if line[0] == ' ' {
			return nil, &Error{no, fmt.Errorf("%w: continuation line without a line to continue", ErrSyntax)}
		}
		// Join the continuation lines that follow (RFC 2849 note 2).
		text := append([]byte(nil), line...)
		for {
			next, nextNo, err := r.peek()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			if len(next) == 0 || next[0] != ' ' {
				break
			}
			r.havPeek = false
			if len(text)+len(next)-1 > r.lim.MaxEntry-size {
				return nil, &Error{nextNo, fmt.Errorf("%w: record longer than %d bytes", ErrTooLarge, r.lim.MaxEntry)}
			}
			text = append(text, next[1:]...)
		}
		if text[0] == '#' {
			continue // a comment, folded or not
		}
		size += len(text) + 1
		if size > r.lim.MaxEntry {
			return nil, &Error{no, fmt.Errorf("%w: record longer than %d bytes", ErrTooLarge, r.lim.MaxEntry)}
		}
		lines = append(lines, logical{text, no})
	}
}

// peek reads the next physical line without consuming it.
func (r *Reader) peek() ([]byte, int, error) {
	if !r.havPeek {
		line, no, err := r.read()
		if err != nil {
			return nil, 0, err
		}
		r.peeked, r.peekNo, r.havPeek = line, no, true
	}
	return r.peeked, r.peekNo, nil
}

// physical returns the next physical line, without its line ending.
func (r *Reader) physical() ([]byte, int, error) {
	if r.havPeek {
		r.havPeek = false
		return r.peeked, r.peekNo, nil
	}
	return r.read()
}

func (r *Reader) read() ([]byte, int, error) {
	var line []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(line)+len(chunk) > r.lim.MaxLine+2 { // +2: the CRLF itself
			return nil, 0, &Error{r.lineNo + 1, fmt.Errorf("%w: line longer than %d bytes", ErrTooLarge, r.lim.MaxLine)}
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(line) == 0 {
				return nil, 0, io.EOF
			}
			break // last line without a newline
		}
		if err != nil {
			return nil, 0, &Error{r.lineNo + 1, fmt.Errorf("read: %w", err)}
		}
		break
	}
	r.lineNo++
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if r.lineNo == 1 {
		line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	}
	if len(line) > r.lim.MaxLine {
		return nil, 0, &Error{r.lineNo, fmt.Errorf("%w: line longer than %d bytes", ErrTooLarge, r.lim.MaxLine)}
	}
	return line, r.lineNo, nil
}

// parseRecord turns the logical lines of one record into an Entry.
func parseRecord(lines []logical) (Entry, error) {
	first := lines[0]
	name, dn, err := splitLine(first)
	if err != nil {
		return Entry{}, err
	}
	if !strings.EqualFold(name, "dn") {
		return Entry{}, &Error{first.no, fmt.Errorf("%w: record starts with %q, want dn:", ErrSyntax, clip(name))}
	}
	if err := checkDN(dn); err != nil {
		return Entry{}, &Error{first.no, err}
	}
	e := Entry{DN: dn, Line: first.no}
	index := map[string]int{} // lower-case name → position in e.Attrs
	for i, l := range lines[1:] {
		if len(l.text) == 1 && l.text[0] == '-' {
			return Entry{}, &Error{l.no, fmt.Errorf("%w: \"-\" separator outside a modify record", ErrSyntax)}
		}
		name, value, err := splitLine(l)
		if err != nil {
			return Entry{}, err
		}
		switch {
		case strings.EqualFold(name, "dn"):
			return Entry{}, &Error{l.no, fmt.Errorf("%w: second dn: in one record (missing blank line?)", ErrSyntax)}
		case strings.EqualFold(name, "control"):
			return Entry{}, &Error{l.no, fmt.Errorf("%w: LDAP controls in LDIF", ErrUnsupported)}
		case strings.EqualFold(name, "changetype"):
			if i != 0 || len(e.Attrs) > 0 {
				return Entry{}, &Error{l.no, fmt.Errorf("%w: changetype: must follow dn: directly", ErrSyntax)}
			}
			if !strings.EqualFold(value, "add") {
				return Entry{}, &Error{l.no, fmt.Errorf("%w: changetype %q (only add)", ErrUnsupported, clip(value))}
			}
			continue
		}
		key := strings.ToLower(name)
		if j, ok := index[key]; ok {
			e.Attrs[j].Values = append(e.Attrs[j].Values, value)
			continue
		}
		index[key] = len(e.Attrs)
		e.Attrs = append(e.Attrs, Attr{Name: name, Values: []string{value}})
	}
	if len(e.Attrs) == 0 {
		return Entry{}, &Error{first.no, fmt.Errorf("%w: entry %q has no attributes", ErrSyntax, clip(dn))}
	}
	return e, nil
}

// checkDN refuses what no directory would store, so a bad file fails with
// its line number instead of a server error mid-import.
func checkDN(dn string) error {
	if dn == "" {
		return fmt.Errorf("%w: empty dn (the root DSE cannot be added)", ErrSyntax)
	}
	if strings.IndexByte(dn, 0) >= 0 {
		return fmt.Errorf("%w: NUL byte in dn", ErrSyntax)
	}
	if !utf8.ValidString(dn) {
		return fmt.Errorf("%w: dn is not valid UTF-8", ErrSyntax)
	}
	if _, err := goldap.ParseDN(dn); err != nil {
		return fmt.Errorf("%w: malformed dn %q: %v", ErrSyntax, clip(dn), err)
	}
	return nil
}

// splitLine splits "name: value", "name:: base64" and refuses
// "name:< url". The value is decoded.
func splitLine(l logical) (name, value string, err error) {
	colon := bytes.IndexByte(l.text, ':')
	if colon < 0 {
		return "", "", &Error{l.no, fmt.Errorf("%w: no colon in %q", ErrSyntax, clip(string(l.text)))}
	}
	name = string(l.text[:colon])
	if !validDescription(name) {
		return "", "", &Error{l.no, fmt.Errorf("%w: invalid attribute description %q", ErrSyntax, clip(name))}
	}
	rest := l.text[colon+1:]
	switch {
	case len(rest) > 0 && rest[0] == ':':
		enc := bytes.TrimLeft(rest[1:], " ")
		dec := make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
		n, err := base64.StdEncoding.Decode(dec, enc)
		if err != nil {
			return "", "", &Error{l.no, fmt.Errorf("%w: bad base64 value of %s: %v", ErrSyntax, clip(name), err)}
		}
		return name, string(dec[:n]), nil
	case len(rest) > 0 && rest[0] == '<':
		return "", "", &Error{l.no, fmt.Errorf("%w: URL value of %s (\":<\"); inline the value", ErrUnsupported, clip(name))}
	}
	v := bytes.TrimLeft(rest, " ")
	for _, c := range v {
		if c == 0 || c == '\r' || c == '\n' {
			return "", "", &Error{l.no, fmt.Errorf("%w: control character %q in value of %s (use base64)", ErrSyntax, c, clip(name))}
		}
	}
	if !utf8.Valid(v) {
		return "", "", &Error{l.no, fmt.Errorf("%w: value of %s is not valid UTF-8 (use base64)", ErrSyntax, clip(name))}
	}
	return name, string(v), nil
}

// validDescription checks an AttributeDescription (RFC 4512 2.5):
// a descriptor or numeric OID, then ;options.
func validDescription(s string) bool {
	// No schema has names anywhere near this long; a longer one is garbage.
	if len(s) > maxDescription {
		return false
	}
	typ, opts, _ := strings.Cut(s, ";")
	if !validType(typ) {
		return false
	}
	if opts == "" {
		return !strings.HasSuffix(s, ";")
	}
	for _, o := range strings.Split(opts, ";") {
		if o == "" || !keychars(o) {
			return false
		}
	}
	return true
}

func validType(s string) bool {
	if s == "" {
		return false
	}
	if c := s[0]; c >= '0' && c <= '9' {
		// numericoid: number *( DOT number )
		for _, n := range strings.Split(s, ".") {
			if n == "" || strings.Trim(n, "0123456789") != "" || (len(n) > 1 && n[0] == '0') {
				return false
			}
		}
		return true
	}
	c := s[0]
	return (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') && keychars(s)
}

func keychars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// clip shortens text quoted in an error, so a 10 MB garbage line does not
// become a 10 MB log line.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
