package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// Limits bound what one command may make the server read and hold. The
// zero value of a field means its default.
type Limits struct {
	// Line bounds one line of command text (the text between two
	// literals counts as one line), without its CRLF. Default 64 KiB.
	Line int
	// Literal bounds a literal argument other than an APPEND message
	// (a mailbox name, a search string, a SASL response). Default 64 KiB.
	Literal int64
	// Append bounds one APPEND message: the server's APPENDLIMIT.
	// Default 64 MiB.
	Append int64
	// Command bounds the text of one command: its lines and literals
	// other than APPEND messages together. Default 1 MiB.
	Command int64
	// Depth bounds the nesting of parenthesised lists and of search keys
	// (NOT, OR). Default 32.
	Depth int
	// Tokens bounds the number of tokens of one command (a sequence set
	// counts one per range). Default 20,000.
	Tokens int
	// LiteralMinus makes non-synchronizing literals over 4096 octets an
	// error (RFC 7888 LITERAL-); otherwise they are bounded like
	// synchronizing ones (LITERAL+).
	LiteralMinus bool
}

func (l Limits) withDefaults() Limits {
	if l.Line <= 0 {
		l.Line = 64 << 10
	}
	if l.Literal <= 0 {
		l.Literal = 64 << 10
	}
	if l.Append <= 0 {
		l.Append = 64 << 20
	}
	if l.Command <= 0 {
		l.Command = 1 << 20
	}
	if l.Depth <= 0 {
		l.Depth = 32
	}
	if l.Tokens <= 0 {
		l.Tokens = 20000
	}
	return l
}

// literalMinusMax is the largest non-synchronizing literal a LITERAL-
// server accepts (RFC 7888 section 5).
const literalMinusMax = 4096

// Error is a command the server refuses without running it. The session
// answers it with Tag (or "*" when no tag could be read), Type, Code and
// Text, then reads the next command unless Fatal: the reader has already
// skipped the rest of the refused command, literals included, so the next
// ReadCommand starts at a command boundary. Fatal means the stream cannot
// be resynchronised (a non-synchronizing literal too large to skip): the
// session answers BYE and closes the connection.
type Error struct {
	Tag   string
	Type  imap.StatusResponseType
	Code  imap.ResponseCode
	Text  string
	Fatal bool
}

func (e *Error) Error() string {
	s := string(e.Type)
	if e.Code != "" {
		s += " [" + string(e.Code) + "]"
	}
	return "imap command " + s + " " + e.Text
}

// Reader reads IMAP commands from a client, one at a time, each as a
// typed Command. It holds at most one line of command text and the small
// literals of the current command; an APPEND message is streamed.
type Reader struct {
	br  *bufio.Reader
	lim Limits
	// cont sends the continuation request "+ ..." for a synchronizing
	// literal whose size has been accepted, and flushes it.
	cont func() error

	buf    []byte // the current line, without CRLF
	pos    int    // next unread octet of buf
	marked bool   // buf ends in a literal marker not yet consumed
	tag    string
	// longTag is the tag of the last line over Limits.Line.
	longTag string
	name    string // command name, for error texts
	tokens  int
	depth   int
	total   int64

	open *Append // an APPEND whose messages are still being read
}

// Reset makes the Reader read from br: after STARTTLS or COMPRESS, once
// the session has checked that nothing is left in the old one (Buffered),
// which would be plaintext or uncompressed data injected before the
// switch.
func (r *Reader) Reset(br *bufio.Reader) { r.br = br }

// SetLimits changes the bounds from the next command on: the session
// allows a client less before it has logged in.
func (r *Reader) SetLimits(lim Limits) { r.lim = lim.withDefaults() }

// Buffered is the number of octets read from the connection but not yet
// parsed.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// NewReader returns a Reader over br. cont is called, after the size of
// a synchronizing literal has been checked, to send the client the
// continuation request it waits for; it must write it and flush.
func NewReader(br *bufio.Reader, lim Limits, cont func() error) *Reader {
	return &Reader{br: br, lim: lim.withDefaults(), cont: cont}
}

// errLineTooLong marks a line over Limits.Line; readLine has discarded it.
var errLineTooLong = errors.New("line too long")

// readLine reads the next line into r.buf. A line ends at LF; a CR before
// it is dropped (bare LF is accepted, as Dovecot does). A line over the
// limit is discarded up to its end, keeping its last octets in r.buf so
// that a literal marker ending it is still seen by skip.
func (r *Reader) readLine() error {
	r.buf = r.buf[:0]
	r.pos = 0
	r.marked = false
	over := false
	for {
		chunk, err := r.br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if err == io.EOF && (len(chunk) > 0 || len(r.buf) > 0) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if over {
			// Keep a tail long enough for "~{18446744073709551615+}\r\n".
			r.buf = append(r.buf, chunk...)
			if len(r.buf) > 64 {
				r.buf = append(r.buf[:0], r.buf[len(r.buf)-32:]...)
			}
		} else {
			r.buf = append(r.buf, chunk...)
			if len(r.buf) > r.lim.Line+2 {
				over = true
				r.longTag = lineTag(r.buf)
			}
		}
		if err == nil {
			break
		}
	}
	r.buf = r.buf[:len(r.buf)-1]
	if n := len(r.buf); n > 0 && r.buf[n-1] == '\r' {
		r.buf = r.buf[:n-1]
	}
	r.marked = hasMarker(r.buf)
	r.total += int64(len(r.buf))
	if over {
		r.pos = len(r.buf)
		return errLineTooLong
	}
	return nil
}

// lineTag is the tag starting line, "" if it does not start with one
// followed by a space: an over-long command is answered with its tag.
func lineTag(line []byte) string {
	for i, c := range line {
		if c == ' ' && i > 0 {
			return string(line[:i])
		}
		if !isTagChar(c) {
			break
		}
	}
	return ""
}

// hasMarker reports whether line ends in a literal marker: {n}, {n+},
// ~{n} or ~{n+}.
func hasMarker(line []byte) bool {
	_, _, _, ok := parseMarker(line)
	return ok
}

// parseMarker parses the literal marker ending line: its size, whether it
// is non-synchronizing, whether it is a literal8, and where it starts.
func parseMarker(line []byte) (start int, size uint64, sync bool, ok bool) {
	n := len(line)
	if n < 3 || line[n-1] != '}' {
		return 0, 0, false, false
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0, 0, false, false
	}
	digits := line[i+1 : n-1]
	sync = true
	if len(digits) > 0 && digits[len(digits)-1] == '+' {
		digits = digits[:len(digits)-1]
		sync = false
	}
	if len(digits) == 0 || len(digits) > 19 {
		return 0, 0, false, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, 0, false, false
		}
	}
	size, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil {
		return 0, 0, false, false
	}
	if i > 0 && line[i-1] == '~' {
		i--
	}
	return i, size, sync, true
}

// skip discards the rest of the current command after an error: the rest
// of the line, and while it ends in a non-synchronizing literal, the
// literal and the line after it. A synchronizing literal ends the command
// here: the client sends it only after a continuation request, which it
// will not get. It returns a fatal Error when a literal is too large to
// skip.
func (r *Reader) skip() error {
	for r.marked {
		_, size, sync, _ := parseMarker(r.buf)
		if sync {
			break
		}
		max := r.lim.Literal
		if r.lim.Append > max {
			max = r.lim.Append
		}
		if r.lim.LiteralMinus {
			max = literalMinusMax
		}
		if size > uint64(max) {
			return &Error{Tag: r.errTag(), Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeTooBig,
				Text: "Literal too large to skip", Fatal: true}
		}
		if _, err := r.br.Discard(int(size)); err != nil {
			return err
		}
		if err := r.readLine(); err != nil && err != errLineTooLong {
			return err
		}
	}
	r.pos = len(r.buf)
	r.marked = false
	return nil
}

func (r *Reader) errTag() string {
	if r.tag == "" {
		return "*"
	}
	return r.tag
}

// bad returns the BAD Error for the current command.
func (r *Reader) bad(format string, args ...any) *Error {
	text := fmt.Sprintf(format, args...)
	if r.name != "" {
		text = "Error in IMAP command " + r.name + ": " + text
	}
	return &Error{Tag: r.errTag(), Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: text}
}

// token counts one token against Limits.Tokens.
func (r *Reader) token() error {
	r.tokens++
	if r.tokens > r.lim.Tokens {
		return r.bad("Too many arguments")
	}
	return nil
}

// atEnd reports whether the current line has been read to its end (a
// literal marker ending it is consumed with the literal).
func (r *Reader) atEnd() bool { return r.pos >= len(r.buf) }

func (r *Reader) peek() byte {
	if r.pos >= len(r.buf) {
		return 0
	}
	return r.buf[r.pos]
}

// sp expects one space.
func (r *Reader) sp() error {
	if r.peek() != ' ' {
		if r.atEnd() {
			return r.bad("Missing arguments")
		}
		return r.bad("Expected a space at %q", r.near())
	}
	r.pos++
	return nil
}

// maybeSP consumes a space if one is next.
func (r *Reader) maybeSP() bool {
	if r.peek() == ' ' {
		r.pos++
		return true
	}
	return false
}

// eol expects the end of the command.
func (r *Reader) eol() error {
	if !r.atEnd() {
		return r.bad("Unexpected arguments at %q", r.near())
	}
	if r.marked {
		return r.bad("Unexpected literal")
	}
	return nil
}

// near quotes a little of the unread line for an error text.
func (r *Reader) near() string {
	s := r.buf[r.pos:]
	if len(s) > 20 {
		s = s[:20]
	}
	return string(s)
}

func (r *Reader) expect(c byte) error {
	if r.peek() != c {
		if r.atEnd() {
			return r.bad("Missing %q", c)
		}
		return r.bad("Expected %q at %q", c, r.near())
	}
	r.pos++
	return nil
}

// isAtomChar reports ATOM-CHAR: any CHAR except atom-specials. Octets
// over 0x7f are accepted (UTF-8 mailbox names from UTF8=ACCEPT clients).
func isAtomChar(c byte) bool {
	switch c {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return c > 0x1f && c != 0x7f
}

// isAStringChar reports ASTRING-CHAR: ATOM-CHAR or "]".
func isAStringChar(c byte) bool { return c == ']' || isAtomChar(c) }

// isListChar reports list-char: ATOM-CHAR, list-wildcards or "]".
func isListChar(c byte) bool { return c == '%' || c == '*' || isAStringChar(c) }

// word returns the longest run of octets satisfying ok, without copying.
func (r *Reader) word(ok func(byte) bool) []byte {
	start := r.pos
	for r.pos < len(r.buf) && ok(r.buf[r.pos]) {
		r.pos++
	}
	return r.buf[start:r.pos]
}

// atomBytes reads an atom; the slice is valid until the next read.
func (r *Reader) atomBytes() ([]byte, error) {
	if err := r.token(); err != nil {
		return nil, err
	}
	a := r.word(isAtomChar)
	if len(a) == 0 {
		if r.atEnd() {
			return nil, r.bad("Missing arguments")
		}
		return nil, r.bad("Expected an atom at %q", r.near())
	}
	return a, nil
}

func (r *Reader) atom() (string, error) {
	a, err := r.atomBytes()
	return string(a), err
}

// keyword reads an atom and upper-cases it in place.
func (r *Reader) keyword() (string, error) {
	a, err := r.atomBytes()
	if err != nil {
		return "", err
	}
	return upper(a), nil
}

// upper upper-cases a in place and returns it as a string; the words of
// the protocol come from a fixed table, so they cost no allocation.
func upper(a []byte) string {
	for i, c := range a {
		if 'a' <= c && c <= 'z' {
			a[i] = c - 'a' + 'A'
		}
	}
	if k, ok := keywords[string(a)]; ok {
		return k
	}
	return string(a)
}

// keywords are the protocol's words (command names, items, options,
// search keys), read-only.
var keywords = func() map[string]string {
	m := map[string]string{}
	for _, k := range strings.Fields(`UID FETCH STORE SEARCH COPY MOVE EXPUNGE SORT THREAD
		CAPABILITY NOOP LOGOUT STARTTLS CHECK CLOSE UNSELECT NAMESPACE IDLE LOGIN AUTHENTICATE
		SELECT EXAMINE CREATE DELETE SUBSCRIBE UNSUBSCRIBE GETQUOTAROOT GETQUOTA SETQUOTA RENAME
		LIST LSUB STATUS APPEND ENABLE ID COMPRESS DEFLATE PLAIN XOAUTH2 OAUTHBEARER
		CONDSTORE QRESYNC USE SUBSCRIBED REMOTE RECURSIVEMATCH SPECIAL-USE RETURN CHILDREN
		MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE APPENDLIMIT DELETED-STORAGE HIGHESTMODSEQ
		ALL FAST FULL ENVELOPE FLAGS INTERNALDATE RFC822.SIZE MODSEQ BODYSTRUCTURE RFC822 RFC822.HEADER
		RFC822.TEXT BODY BODY.PEEK BINARY BINARY.PEEK BINARY.SIZE HEADER TEXT MIME HEADER.FIELDS
		HEADER.FIELDS.NOT CHANGEDSINCE VANISHED UNCHANGEDSINCE FLAGS.SILENT +FLAGS +FLAGS.SILENT -FLAGS
		-FLAGS.SILENT MIN MAX COUNT SAVE ANSWERED DRAFT FLAGGED SEEN UNANSWERED UNDELETED UNDRAFT
		UNFLAGGED NEW OLD KEYWORD UNKEYWORD BCC CC FROM SUBJECT TO BEFORE ON SINCE SENTBEFORE SENTON
		SENTSINCE LARGER SMALLER NOT OR PRIV SHARED REVERSE ARRIVAL DATE DISPLAYFROM DISPLAYTO
		REFERENCES ORDEREDSUBJECT UTF-8 US-ASCII UTF8=ACCEPT IMAP4REV2 STORAGE MESSAGE MAILBOX`) {
		m[k] = k
	}
	return m
}()

// isLiteralNext reports whether a literal starts here.
func (r *Reader) isLiteralNext() bool {
	c := r.peek()
	return c == '{' || (c == '~' && r.pos+1 < len(r.buf) && r.buf[r.pos+1] == '{')
}

// literal reads the literal starting here: its marker must end the line.
// max bounds its size; binary allows a literal8.
func (r *Reader) literal(max int64, binary bool) ([]byte, error) {
	size, lit8, err := r.literalHeader(max, binary, true)
	if err != nil {
		return nil, err
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r.br, data); err != nil {
		return nil, err
	}
	if !lit8 && bytes.IndexByte(data, 0) >= 0 {
		if err := r.readLine(); err != nil && err != errLineTooLong {
			return nil, err
		}
		return nil, r.bad("NUL octet in literal")
	}
	if err := r.readLine(); err != nil {
		if err == errLineTooLong {
			return nil, r.bad("Line too long")
		}
		return nil, err
	}
	return data, nil
}

func (r *Reader) fatalTooBig(text string) *Error {
	e := r.bad("%s", text)
	e.Code = imap.ResponseCodeTooBig
	e.Fatal = true
	return e
}

// literalHeader checks the marker of the literal starting here, and for
// a synchronizing literal sends the continuation request. After it the
// caller reads size octets from r.br, then the next line. A literal that
// counts against Limits.Command (all but APPEND messages) is also bounded
// by what is left of it, before any continuation request is sent.
func (r *Reader) literalHeader(max int64, binary, counts bool) (size int64, lit8 bool, err error) {
	if err := r.token(); err != nil {
		return 0, false, err
	}
	start, usize, sync, ok := parseMarker(r.buf)
	if !ok || start != r.pos {
		return 0, false, r.bad("Invalid literal at %q", r.near())
	}
	lit8 = r.buf[start] == '~'
	if lit8 && !binary {
		return 0, false, r.bad("literal8 not allowed here")
	}
	r.pos = len(r.buf)
	text := "Literal too large"
	if left := r.lim.Command - r.total; counts && left < max {
		max = left
		text = "Command too long"
	}
	if !sync && r.lim.LiteralMinus && usize > literalMinusMax {
		r.marked = true
		return 0, false, r.fatalTooBig("Non-synchronizing literal over 4096 octets (LITERAL-)")
	}
	if usize > uint64(max) {
		if sync {
			// The client waits for a continuation it will not get:
			// the command ends here and the stream stays usable.
			r.marked = false
			e := r.bad("%s", text)
			if r.name == "APPEND" {
				e.Type = imap.StatusResponseTypeNo
			}
			e.Code = imap.ResponseCodeTooBig
			return 0, false, e
		}
		r.marked = true
		return 0, false, r.fatalTooBig("Non-synchronizing literal too large")
	}
	r.marked = false
	if counts {
		r.total += int64(usize)
	}
	if sync && r.cont != nil {
		if err := r.cont(); err != nil {
			return 0, false, err
		}
	}
	return int64(usize), lit8, nil
}

// quoted reads a quoted string (RFC 9051 quoted: \" and \\ are the only
// escapes; no CR, LF or NUL).
func (r *Reader) quoted() ([]byte, error) {
	if err := r.token(); err != nil {
		return nil, err
	}
	if err := r.expect('"'); err != nil {
		return nil, err
	}
	start := r.pos
	// Fast path: no escapes, the octets are used in place.
	for i := r.pos; i < len(r.buf); i++ {
		switch c := r.buf[i]; c {
		case '"':
			r.pos = i + 1
			return r.buf[start:i], nil
		case '\\':
			return r.quotedEscaped(start)
		case 0:
			return nil, r.bad("NUL octet in quoted string")
		case '\r':
			return nil, r.bad("CR in quoted string")
		}
	}
	return nil, r.bad("Unterminated quoted string")
}

func (r *Reader) quotedEscaped(start int) ([]byte, error) {
	var out []byte
	for i := start; i < len(r.buf); i++ {
		c := r.buf[i]
		switch c {
		case '"':
			r.pos = i + 1
			return out, nil
		case '\\':
			i++
			if i >= len(r.buf) || (r.buf[i] != '"' && r.buf[i] != '\\') {
				return nil, r.bad("Invalid escape in quoted string")
			}
			c = r.buf[i]
		case 0:
			return nil, r.bad("NUL octet in quoted string")
		case '\r':
			return nil, r.bad("CR in quoted string")
		}
		out = append(out, c)
	}
	return nil, r.bad("Unterminated quoted string")
}

// str reads a string: quoted or literal.
func (r *Reader) str() (string, error) {
	b, err := r.strBytes()
	return string(b), err
}

func (r *Reader) strBytes() ([]byte, error) {
	switch {
	case r.peek() == '"':
		return r.quoted()
	case r.isLiteralNext():
		return r.literal(r.lim.Literal, false)
	case r.atEnd():
		return nil, r.bad("Missing arguments")
	}
	return nil, r.bad("Expected a string at %q", r.near())
}

// astring reads an atom of ASTRING-CHARs or a string.
func (r *Reader) astring() (string, error) {
	c := r.peek()
	if c == '"' || r.isLiteralNext() {
		return r.str()
	}
	if err := r.token(); err != nil {
		return "", err
	}
	a := r.word(isAStringChar)
	if len(a) == 0 {
		if r.atEnd() {
			return "", r.bad("Missing arguments")
		}
		return "", r.bad("Expected a string at %q", r.near())
	}
	return string(a), nil
}

// nstring reads a string or NIL; nil for NIL.
func (r *Reader) nstring() (*string, error) {
	if c := r.peek(); c == 'N' || c == 'n' {
		a, err := r.atomBytes()
		if err != nil {
			return nil, err
		}
		if !bytes.EqualFold(a, []byte("NIL")) {
			return nil, r.bad("Expected a string or NIL")
		}
		return nil, nil
	}
	s, err := r.str()
	return &s, err
}

// mailbox reads a mailbox name (astring). INBOX is case-insensitive.
func (r *Reader) mailbox() (string, error) {
	s, err := r.astring()
	if err == nil && len(s) == 5 && bytes.EqualFold([]byte(s), []byte("INBOX")) {
		s = "INBOX"
	}
	return s, err
}

// listMailbox reads a LIST pattern: list-chars or a string.
func (r *Reader) listMailbox() (string, error) {
	if c := r.peek(); c == '"' || r.isLiteralNext() {
		return r.str()
	}
	if err := r.token(); err != nil {
		return "", err
	}
	a := r.word(isListChar)
	if len(a) == 0 {
		return "", r.bad("Expected a mailbox pattern at %q", r.near())
	}
	return string(a), nil
}

// digits reads 1*DIGIT as a number of at most max.
func (r *Reader) digits(max uint64) (uint64, error) {
	if err := r.token(); err != nil {
		return 0, err
	}
	start := r.pos
	var n uint64
	for r.pos < len(r.buf) {
		c := r.buf[r.pos]
		if c < '0' || c > '9' {
			break
		}
		d := uint64(c - '0')
		if n > (max-d)/10 {
			return 0, r.bad("Number too large")
		}
		n = n*10 + d
		r.pos++
	}
	if r.pos == start {
		if r.atEnd() {
			return 0, r.bad("Missing arguments")
		}
		return 0, r.bad("Expected a number at %q", r.near())
	}
	return n, nil
}

func (r *Reader) number() (uint32, error) {
	n, err := r.digits(1<<32 - 1)
	return uint32(n), err
}

func (r *Reader) nzNumber() (uint32, error) {
	n, err := r.number()
	if err == nil && n == 0 {
		return 0, r.bad("Number must not be zero")
	}
	return n, err
}

// number64 reads RFC 9051's number64 (0 .. 2^63-1).
func (r *Reader) number64() (uint64, error) { return r.digits(1<<63 - 1) }

// modSeq reads a mod-sequence-value (1 .. 2^63-1).
func (r *Reader) modSeq() (uint64, error) {
	n, err := r.number64()
	if err == nil && n == 0 {
		return 0, r.bad("Mod-sequence must not be zero")
	}
	return n, err
}

// list reads "(" [item *(SP item)] ")" calling item for each element.
func (r *Reader) list(item func() error) error {
	if err := r.expect('('); err != nil {
		return err
	}
	if err := r.enter(); err != nil {
		return err
	}
	defer r.leave()
	if r.peek() == ')' {
		r.pos++
		return nil
	}
	for {
		if err := item(); err != nil {
			return err
		}
		switch r.peek() {
		case ')':
			r.pos++
			return nil
		case ' ':
			r.pos++
		default:
			if r.atEnd() {
				return r.bad("Missing ')'")
			}
			return r.bad("Expected ' ' or ')' at %q", r.near())
		}
	}
}

// enter counts one level of nesting against Limits.Depth.
func (r *Reader) enter() error {
	r.depth++
	if r.depth > r.lim.Depth {
		return r.bad("Too deeply nested")
	}
	return nil
}

func (r *Reader) leave() { r.depth-- }
