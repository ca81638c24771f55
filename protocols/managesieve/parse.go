package managesieve

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// parse.go reads client commands (RFC 5804 section 4): a command name,
// then strings (quoted, or literals {n+} and {n}, both taken without a
// continuation request since ManageSieve has none) and numbers, up to
// CRLF. Everything is bounded: the octets outside literals, each literal,
// the literals of one command, the arguments.

const (
	// maxQuoted is RFC 5804's limit for a quoted string (section 4: 1024
	// octets); longer strings must be literals.
	maxQuoted = 1024
	// maxLineOctets bounds a command's octets outside its literals.
	maxLineOctets = 8 * 1024
	// maxArgs bounds a command's arguments; none takes more than 2.
	maxArgs = 8
	// maxDiscard is how much of a refused literal or a bad line is read
	// and thrown away to keep the session; beyond it the client is cut.
	maxDiscard = 16 << 20
	// maxNumber bounds a number argument or a literal's length (RFC 5804
	// number: 0..4294967295).
	maxNumber = 1<<32 - 1
)

type argKind int

const (
	argString argKind = iota + 1
	argNumber
	argAtom
)

// arg is one command argument.
type arg struct {
	kind argKind
	s    string // argString, argAtom
	n    int64  // argNumber
}

// syntaxError is a bad command the session survives: the rest of the line
// is skipped and the client gets NO.
type syntaxError struct {
	msg string
	// tooBig marks a literal over the size limit (NO (QUOTA/MAXSIZE)).
	tooBig bool
	// atEOL says the line's end was already read.
	atEOL bool
}

func (e *syntaxError) Error() string { return e.msg }

// errFatal wraps errors after which the stream cannot be followed.
var errFatal = errors.New("unrecoverable protocol error")

// reader reads commands from br.
type reader struct {
	br         *bufio.Reader
	maxLiteral int64 // one literal's limit
	used       int   // octets of the current command outside literals
	litTotal   int64 // octets of the current command's literals
}

func (r *reader) byte() (byte, error) {
	b, err := r.br.ReadByte()
	if err != nil {
		return 0, err
	}
	if r.used++; r.used > maxLineOctets {
		return 0, fmt.Errorf("%w: line longer than %d octets", errFatal, maxLineOctets)
	}
	return b, nil
}

func syntaxf(format string, a ...any) error {
	return &syntaxError{msg: fmt.Sprintf(format, a...)}
}

// command reads one command. The name is upper-cased.
func (r *reader) command() (string, []arg, error) {
	r.used, r.litTotal = 0, 0
	var name strings.Builder
	for {
		b, err := r.byte()
		if err != nil {
			return "", nil, err
		}
		switch {
		case isAtomChar(b):
			name.WriteByte(upper(b))
			continue
		case b == ' ' && name.Len() > 0:
		case b == '\n' || b == '\r':
			if b == '\r' {
				if err := r.lf(); err != nil {
					return "", nil, err
				}
			}
			if name.Len() == 0 {
				return "", nil, &syntaxError{msg: "empty command", atEOL: true}
			}
			return name.String(), nil, nil
		case b == 0:
			return "", nil, syntaxf("NUL octet in command")
		default:
			return "", nil, syntaxf("a command name is letters")
		}
		break
	}
	args, err := r.args()
	return name.String(), args, err
}

// lf reads the LF after a CR.
func (r *reader) lf() error {
	b, err := r.byte()
	if err != nil {
		return err
	}
	if b != '\n' {
		return syntaxf("CR not followed by LF")
	}
	return nil
}

// args reads arguments up to the end of the line (a bare LF is taken as
// CRLF: telnet-style clients send it and nothing is ambiguous).
func (r *reader) args() ([]arg, error) {
	var args []arg
	for {
		b, err := r.byte()
		if err != nil {
			return nil, err
		}
		var a arg
		switch {
		case b == ' ':
			continue
		case b == '\r' || b == '\n':
			if b == '\r' {
				if err := r.lf(); err != nil {
					return nil, err
				}
			}
			return args, nil
		case b == '"':
			s, err := r.quoted()
			if err != nil {
				return nil, err
			}
			a = arg{kind: argString, s: s}
		case b == '{':
			s, err := r.literal()
			if err != nil {
				return nil, err
			}
			a = arg{kind: argString, s: s}
		case b >= '0' && b <= '9':
			n, next, err := r.number(b)
			if err != nil {
				return nil, err
			}
			if err := r.br.UnreadByte(); err != nil {
				return nil, fmt.Errorf("%w: %v", errFatal, err)
			}
			r.used--
			if next != ' ' && next != '\r' && next != '\n' {
				return nil, syntaxf("bad number")
			}
			a = arg{kind: argNumber, n: n}
		case isAtomChar(b):
			var s strings.Builder
			s.WriteByte(b)
			for {
				c, err := r.byte()
				if err != nil {
					return nil, err
				}
				if !isAtomChar(c) {
					r.br.UnreadByte()
					r.used--
					break
				}
				s.WriteByte(c)
			}
			a = arg{kind: argAtom, s: s.String()}
		case b == 0:
			return nil, syntaxf("NUL octet in command")
		default:
			return nil, syntaxf("unexpected %q in arguments", b)
		}
		if len(args) == maxArgs {
			return nil, syntaxf("too many arguments")
		}
		args = append(args, a)
	}
}

// quoted reads a quoted string after its opening quote.
func (r *reader) quoted() (string, error) {
	var s strings.Builder
	for {
		b, err := r.byte()
		if err != nil {
			return "", err
		}
		switch b {
		case '"':
			return s.String(), nil
		case '\\':
			if b, err = r.byte(); err != nil {
				return "", err
			}
			if b != '"' && b != '\\' {
				return "", syntaxf("a quoted string may escape only a quote and a backslash")
			}
		case '\r', '\n':
			return "", &syntaxError{msg: "unterminated quoted string", atEOL: b == '\n'}
		case 0:
			return "", syntaxf("NUL octet in a quoted string")
		}
		if s.Len() == maxQuoted {
			return "", syntaxf("quoted string longer than %d octets: send a literal", maxQuoted)
		}
		s.WriteByte(b)
	}
}

// number reads digits after the first one and returns the octet after
// them (not consumed: it is unread by the caller).
func (r *reader) number(first byte) (int64, byte, error) {
	n := int64(first - '0')
	for {
		b, err := r.byte()
		if err != nil {
			return 0, 0, err
		}
		if b < '0' || b > '9' {
			return n, b, nil
		}
		if n = n*10 + int64(b-'0'); n > maxNumber {
			return 0, 0, syntaxf("number too large")
		}
	}
}

// literal reads {n+} or {n}, CRLF and n octets, after the brace.
func (r *reader) literal() (string, error) {
	b, err := r.byte()
	if err != nil {
		return "", err
	}
	if b < '0' || b > '9' {
		return "", syntaxf("bad literal length")
	}
	n, next, err := r.number(b)
	if err != nil {
		return "", err
	}
	if next == '+' {
		if next, err = r.byte(); err != nil {
			return "", err
		}
	}
	if next != '}' {
		return "", syntaxf("bad literal: want {n+} or {n}")
	}
	if b, err = r.byte(); err != nil {
		return "", err
	}
	if b == '\r' {
		if b, err = r.byte(); err != nil {
			return "", err
		}
	}
	if b != '\n' {
		return "", syntaxf("a literal's length must end the line")
	}
	if r.litTotal += n; n > r.maxLiteral || r.litTotal > r.maxLiteral+maxQuoted*maxArgs {
		// The client sends the octets whatever we say ({n+}): read them
		// to stay in step, if there are not too many.
		if n > maxDiscard {
			return "", fmt.Errorf("%w: literal of %d octets", errFatal, n)
		}
		if _, err := io.CopyN(io.Discard, r.br, n); err != nil {
			return "", err
		}
		return "", &syntaxError{msg: fmt.Sprintf("literal of %d octets exceeds the limit of %d", n, r.maxLiteral), tooBig: true}
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r.br, buf); err != nil {
		return "", err
	}
	return string(buf), nil
}

// skipLine throws away the rest of a bad line.
func (r *reader) skipLine() error {
	for n := 0; n < maxDiscard; n++ {
		b, err := r.br.ReadByte()
		if err != nil {
			return err
		}
		if b == '\n' {
			return nil
		}
	}
	return fmt.Errorf("%w: bad line longer than %d octets", errFatal, maxDiscard)
}

// isAtomChar: command names and the rare atom argument (RFC 5804 uses
// none but accepts IMAP-like atoms); letters, digits, "-" and "_".
func isAtomChar(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_'
}

func upper(b byte) byte {
	if b >= 'a' && b <= 'z' {
		return b - 'a' + 'A'
	}
	return b
}

// quote writes s as a ManageSieve string: quoted when it can be, else a
// literal {n} (server to client).
func quote(s string) string {
	if len(s) <= maxQuoted && !strings.ContainsAny(s, "\r\n\x00") {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	return "{" + strconv.Itoa(len(s)) + "}\r\n" + s
}
