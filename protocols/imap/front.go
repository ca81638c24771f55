package imap

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/vmaild/vmaild/protocols/gate"
)

// frontConn is the net.Conn go-imap's imapserver reads and writes. It sits
// between the client and the library and follows the command stream exactly
// (lines, literals, continuation requests, tagged completions), which lets
// it do what the library cannot:
//
//   - answer GETQUOTAROOT, GETQUOTA and SETQUOTA (RFC 9208), which the
//     library does not dispatch, and STARTTLS, so that TLS is negotiated
//     below the front and the front keeps seeing plaintext commands;
//   - add STARTTLS, LOGINDISABLED and QUOTA to every capability list the
//     library writes (greeting, CAPABILITY, LOGIN/AUTHENTICATE OK);
//   - refuse what the library handles badly: literals it would stall on
//     (a synchronizing literal over 4096 octets outside APPEND makes it wait
//     for data the client never sends), lines past its 50 KiB parser limit,
//     NUL octets, commands without a tag, plaintext pipelined behind
//     STARTTLS;
//   - send the "+" for every synchronizing literal itself, after checking
//     its size, and hand the library non-synchronizing literals only, so
//     the front always knows whether literal data follows;
//   - coalesce the library's one-write-per-response output while a command
//     runs, and own all read and write deadlines (which the gate clamps to
//     its absolute limits);
//   - tell the gate when a client has logged in, and when it waits between
//     commands, which is when Shutdown may end it.
//
// A command is recognised only at a command boundary, never inside a
// literal, so message data is never parsed as commands. Commands other than
// APPEND are read whole (their literals are at most 4096 octets) before the
// library sees a byte of them; APPEND's message literal is streamed.
//
// The front and the library must agree on where every command ends, or
// bytes the front took for data (a literal, the rest of a line) become a
// command the front never saw. The front makes that agreement hold by
// construction (see readCommand and next): it refuses lines go-imap would
// split differently (a CR inside a line, a quoted string left open at the
// end of a line, trailing data after an APPEND message, which go-imap
// drops without an answer), it hands the library a command one line or
// one literal per read, so the library never holds more than the piece it
// is parsing, and once the library has answered a command the rest of it
// is dropped. What it cannot rule out it detects: the library answering a
// tag other than the one forwarded, answering twice, asking for more of a
// command the front has handed over whole, or asking for a continuation
// line while literal data is pending. Any of these logs msgDiverged and
// closes the connection with a BYE.
type frontConn struct {
	srv    *Server
	gc     *gate.Conn
	ip     netip.Addr
	ctx    context.Context
	cancel context.CancelFunc

	// Reader side: used only by the goroutine go-imap reads with (which is
	// also the one that runs the session's commands).
	br          *bufio.Reader
	pending     []byte   // bytes handed to the library next
	queued      [][]byte // the rest of the command, one piece per read
	cmdBuf      []byte
	litBuf      []byte
	state       inState
	litLeft     int64 // literal octets still to pass (inLiteral)
	appendParen bool  // the streamed APPEND message ends with ")" (UTF8 (~{n}))
	cmdName     string
	readErr     error

	mu         sync.Mutex
	raw        net.Conn
	isTLS      bool
	sess       *session
	tag        string // tag of the command being executed
	completed  bool   // its tagged response was written
	cont       bool   // a "+" was written since the reader last looked
	atRest     bool   // the reader waits for a command or for IDLE's DONE
	closed     bool
	own        bool   // the output being scanned is the front's, not the library's
	split      string // why the library's view of the commands left the front's
	out        []byte // output not yet written to raw
	os         outState
	head       []byte // start of the current output line
	outLit     int64
	det        literalDetector
	outErr     error
	closeOnce  sync.Once
	writeTimer time.Duration
}

type inState uint8

const (
	inNew       inState = iota // next client bytes start a command
	inLiteral                  // literal data of a streamed APPEND
	inArgs                     // the rest of a streamed APPEND after its literal
	inForwarded                // the whole command is with the library or queued
)

type outState uint8

const (
	outHead    outState = iota // collecting the start of a line
	outCap                     // collecting a whole capability line
	outLine                    // passing the rest of a line
	outLiteral                 // passing literal data
)

const (
	outFlushAt = 32 << 10
	headMax    = 96
	capLineMax = 8 << 10
	// maxContinuationLine bounds a line answering a continuation request
	// (AUTHENTICATE, IDLE's DONE), CRLF included: go-imap reads those with
	// bufio.Reader.ReadLine over its 4096-octet buffer, and would read the
	// rest of a longer line as a command.
	maxContinuationLine = 4096
)

// newFrontConn fronts nc, which is gc or TLS over it.
func newFrontConn(s *Server, nc net.Conn, gc *gate.Conn) *frontConn {
	f := &frontConn{srv: s, gc: gc, ip: gc.Client(), raw: nc}
	_, f.isTLS = nc.(*tls.Conn)
	f.ctx, f.cancel = context.WithCancel(gc.Context())
	// Small: an idle connection holds it while it waits; long lines are
	// assembled from pieces and literals bypass it.
	f.br = bufio.NewReaderSize(nc, 1024)
	return f
}

// tlsOrInsecure reports whether a password may be sent now.
func (f *frontConn) tlsOrInsecure() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.isTLS || f.srv.AllowInsecureAuth
}

func (f *frontConn) usingTLS() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.isTLS
}

// currentCommand is the name of the command being executed ("UID FETCH").
func (f *frontConn) currentCommand() string { return f.cmdName }

// net.Conn. go-imap's deadlines are ignored: the front sets its own from
// Server.Timeouts before every read and write, knowing what it waits for.
func (f *frontConn) LocalAddr() net.Addr                { return f.rawConn().LocalAddr() }
func (f *frontConn) RemoteAddr() net.Addr               { return f.rawConn().RemoteAddr() }
func (f *frontConn) SetDeadline(t time.Time) error      { return nil }
func (f *frontConn) SetReadDeadline(t time.Time) error  { return nil }
func (f *frontConn) SetWriteDeadline(t time.Time) error { return nil }

func (f *frontConn) rawConn() net.Conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.raw
}

// Close flushes what is buffered (briefly) and closes the connection.
func (f *frontConn) Close() error {
	f.closeOnce.Do(func() {
		f.mu.Lock()
		if f.outErr == nil && len(f.out) > 0 {
			f.raw.SetWriteDeadline(time.Now().Add(min(f.srv.writeTimeout(), 5*time.Second)))
			f.raw.Write(f.out)
		}
		f.out = nil
		f.closed = true
		f.raw.Close()
		f.mu.Unlock()
		f.cancel()
	})
	return nil
}

// bye says goodbye for a wait at rest cut short by a timeout, a gate limit
// or Shutdown, unless a response is half written (IDLE updates come from
// another goroutine): then the client just sees the connection close.
func (f *frontConn) bye() {
	text := "Autologout; idle for too long"
	if r := f.gc.Expired(); r != "" {
		text = r.Text()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.os != outHead || len(f.head) != 0 {
		return
	}
	f.out = append(f.out, "* BYE "+text+"\r\n"...)
	f.flushLocked()
}

// ---- reading: client → library ----

var (
	errLineTooLong = errors.New("line too long")
	errHangUp      = errors.New("connection closed by the front")
)

func (f *frontConn) Read(p []byte) (int, error) {
	if f.readErr != nil {
		return 0, f.readErr
	}
	for len(f.pending) == 0 || f.answered() {
		if err := f.next(); err != nil {
			// Sticky: go-imap's bufio.Reader reports an error once
			// and would read on.
			f.readErr = err
			return 0, err
		}
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

// answered reports whether the library has answered the command it is
// being handed; nothing more of that command may reach it then.
func (f *frontConn) answered() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.completed
}

// next finds the library's next bytes: the next queued piece of the
// command, the rest of a streamed APPEND, a line answering a continuation
// request (AUTHENTICATE, IDLE's DONE), or the next command.
//
// go-imap asks for bytes (its bufio.Reader is empty) only when it has
// consumed every byte handed to it. So a read while it owes the command an
// answer means it wants more of that command, and a read after its answer
// means it is at a command boundary, whatever is left of the command on
// the front's side.
func (f *frontConn) next() error {
	f.mu.Lock()
	completed, cont, split := f.completed, f.cont, f.split
	f.cont = false
	f.mu.Unlock()
	if split != "" {
		return errHangUp // the write side found a divergence and said BYE
	}
	if completed {
		// The library answered without reading all of the command (a
		// syntax error before a literal, say): the rest is dropped,
		// and what the client still sends of it is skipped.
		f.pending, f.queued = nil, nil
		if f.state == inLiteral || f.state == inArgs {
			if err := f.discardCommand(); err != nil {
				return err
			}
		}
		f.state = inNew
	}
	if len(f.queued) > 0 {
		if cont {
			return f.diverge("continuation request before the command's literal data")
		}
		f.pending, f.queued = f.queued[0], f.queued[1:]
		return nil
	}
	switch f.state {
	case inLiteral:
		return f.passLiteral()
	case inArgs:
		return f.readArgs()
	case inForwarded:
		if !cont {
			return f.diverge("the library reads past the end of the command")
		}
		return f.readContinuation()
	}
	f.state = inNew
	return f.readCommand()
}

// readContinuation hands the library one raw line answering its
// continuation request: AUTHENTICATE's response or IDLE's DONE.
func (f *frontConn) readContinuation() error {
	idle := f.cmdName == "IDLE"
	timeout := f.srv.commandTimeout()
	if idle {
		timeout = f.srv.idleTimeout()
	}
	line, err := f.readLine(timeout, maxContinuationLine, idle)
	if err != nil {
		if !errors.Is(err, errLineTooLong) {
			return err
		}
		line = []byte("*\r\n") // cancels AUTHENTICATE, ends IDLE with BAD
	}
	f.pending = line
	return nil
}

// diverge ends a connection whose command stream the library reads
// differently from the front, before it acts on anything more.
func (f *frontConn) diverge(reason string) error {
	f.mu.Lock()
	f.divergeLocked(reason)
	f.mu.Unlock()
	return errHangUp
}

// divergeLocked logs a divergence, says BYE and closes the transport, so
// that the library's next read or write fails. f.mu is held.
func (f *frontConn) divergeLocked(reason string) {
	if f.split == "" {
		f.split = reason
	}
	if f.outErr == errHangUp {
		return
	}
	f.srv.logger().Warn(msgDiverged, "remote", f.raw.RemoteAddr().String(), "tag", f.tag, "reason", f.split)
	// The line being scanned, the library's answer to a command the
	// front never forwarded, is not sent.
	f.head, f.os = f.head[:0], outHead
	f.out = append(f.out, "* BYE [CLIENTBUG] Command stream out of step, closing connection\r\n"...)
	f.flushLocked()
	f.outErr = errHangUp
	f.raw.Close()
}

// setReadDeadline arms the read deadline on the current transport.
func (f *frontConn) setReadDeadline(d time.Duration) {
	f.rawConn().SetReadDeadline(time.Now().Add(d))
}

// readLine reads one line (with its LF) of at most limit octets. rest marks
// the wait as one between commands (or IDLE's), which the gate's Shutdown
// may cut short, and which ends with BYE when it times out. Buffered output
// is written first: the client may be waiting for it.
func (f *frontConn) readLine(timeout time.Duration, limit int, rest bool) (line []byte, err error) {
	f.mu.Lock()
	err = f.flushLocked()
	f.atRest = rest
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if rest {
		f.gc.Idle()
	}
	defer func() {
		f.mu.Lock()
		f.atRest = false
		f.mu.Unlock()
		var ne net.Error
		if rest && errors.As(err, &ne) && ne.Timeout() {
			f.bye()
		}
	}()
	f.setReadDeadline(timeout)
	for {
		chunk, err := f.br.ReadSlice('\n')
		if len(line)+len(chunk) > limit {
			line = append(line, chunk[:max(0, limit-len(line))]...)
			if err == nil {
				return line, errLineTooLong
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				return line, f.skipLine(timeout)
			}
			return nil, err
		}
		line = append(line, chunk...)
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		// A long line: keep reading; the limit bounds it.
		f.setReadDeadline(f.srv.commandTimeout())
	}
}

// skipLine drops input up to and including the next LF, then reports
// errLineTooLong. The tail of the dropped line is remembered so that a
// literal it announces can be skipped too.
func (f *frontConn) skipLine(timeout time.Duration) error {
	var tail []byte
	for {
		f.setReadDeadline(timeout)
		chunk, err := f.br.ReadSlice('\n')
		tail = append(tail, chunk...)
		if len(tail) > 64 {
			tail = append(tail[:0], tail[len(tail)-64:]...)
		}
		if err == nil {
			f.litBuf = append(f.litBuf[:0], tail...)
			return errLineTooLong
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

// literalAnnounced parses a literal announcement at the end of line:
// "{n}", "{n+}" or literal8 "~{n}", then CRLF (or a bare LF), with the
// space go-imap allows before the CRLF. It returns the line up to the
// announcement.
func literalAnnounced(line []byte) (prefix []byte, n int64, nonSync, ok bool) {
	l := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	l = bytes.TrimSuffix(l, []byte(" "))
	if len(l) < 3 || l[len(l)-1] != '}' {
		return nil, 0, false, false
	}
	open := bytes.LastIndexByte(l, '{')
	if open < 0 {
		return nil, 0, false, false
	}
	num := l[open+1 : len(l)-1]
	if len(num) > 0 && num[len(num)-1] == '+' {
		nonSync = true
		num = num[:len(num)-1]
	}
	if len(num) == 0 || len(num) > 18 {
		if len(num) > 18 && allDigits(num) {
			return l[:open], 1 << 62, nonSync, true
		}
		return nil, 0, false, false
	}
	if !allDigits(num) {
		return nil, 0, false, false
	}
	v, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil {
		return nil, 0, false, false
	}
	return l[:open], v, nonSync, true
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// withNonSync rewrites a line's literal announcement as non-synchronizing.
func withNonSync(dst, prefix []byte, n int64) []byte {
	dst = append(dst, prefix...)
	dst = append(dst, '{')
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, "+}\r\n"...)
}

func isTagChar(c byte) bool {
	switch c {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']', '+':
		return false
	}
	return c > 0x20 && c < 0x7f
}

func isAtomChar(c byte) bool {
	switch c {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return c > 0x20 && c < 0x7f
}

// parseCommandStart splits "tag SP name [SP UID-subcommand]" off a line.
// A name running into an octet over 0x7F is refused: go-imap would read
// it as part of the name, and the front would dispatch on a different one.
func parseCommandStart(line []byte) (tag, name string, ok bool) {
	i := 0
	for i < len(line) && isTagChar(line[i]) {
		i++
	}
	if i == 0 || i == len(line) || line[i] != ' ' {
		return string(line[:i]), "", false
	}
	tag = string(line[:i])
	j := i + 1
	for j < len(line) && isAtomChar(line[j]) {
		j++
	}
	if j == i+1 || j < len(line) && line[j] >= 0x80 {
		return tag, "", false
	}
	name = string(bytes.ToUpper(line[i+1 : j]))
	if name == "UID" {
		// go-imap drops the connection without a word on a bare UID.
		if j == len(line) || line[j] != ' ' {
			return tag, "", false
		}
		k := j + 1
		for k < len(line) && isAtomChar(line[k]) {
			k++
		}
		if k == j+1 || k < len(line) && line[k] >= 0x80 {
			return tag, "", false
		}
		name = "UID " + string(bytes.ToUpper(line[j+1:k]))
	}
	return tag, name, true
}

// readCommand reads the next command. Commands the front answers itself are
// handled here; any other is handed to the library whole, or for a large
// APPEND up to its message literal.
func (f *frontConn) readCommand() error {
	timeout := f.srv.loginTimeout()
	if f.sess != nil && f.sess.loggedIn() {
		timeout = f.srv.idleTimeout()
		f.gc.Authenticated()
	}
	maxLine := f.srv.maxLine()
	line, err := f.readLine(timeout, maxLine, true)
	if err != nil && !errors.Is(err, errLineTooLong) {
		return err
	}
	if !f.gc.Busy() {
		// Shutting down: a command the client sent meanwhile is not
		// started.
		f.writeNow("* BYE " + gate.Shutdown.Text() + "\r\n")
		return io.EOF
	}
	tag, name, ok := parseCommandStart(line)
	f.cmdName = name
	if errors.Is(err, errLineTooLong) {
		return f.refuse(tag, f.litBuf, "BAD", "[TOOBIG] Command line too long (max "+strconv.Itoa(maxLine)+" octets)")
	}
	trimmed := bytes.TrimRight(line, "\r\n")
	switch {
	case len(trimmed) == 0:
		f.writeNow("* BAD [CLIENTBUG] Empty command line\r\n")
		return nil
	case !ok && (tag == "" || len(trimmed) > len(tag) && trimmed[len(tag)] != ' '):
		return f.refuse("", line, "BAD", "[CLIENTBUG] Missing or invalid command tag")
	case !ok:
		return f.refuse(tag, line, "BAD", "[CLIENTBUG] Missing or invalid command name")
	}

	buf := f.cmdBuf[:0]
	var pieces []int // where buf's pieces end: after each line, after each literal
	piece := func() {
		if len(pieces) == 0 || pieces[len(pieces)-1] < len(buf) {
			pieces = append(pieces, len(buf))
		}
	}
	text, lits := 0, 0
	afterMessage, paren := false, false // APPEND: the message literal was read, and its data extension wants ")"
	for {
		if fault := lineFault(line); fault != "" {
			return f.refuse(tag, line, "BAD", "[CLIENTBUG] "+fault)
		}
		if afterMessage && !appendEnd(line, paren) {
			return f.refuse(tag, line, "BAD", "[CLIENTBUG] Only one message per APPEND, and nothing after it")
		}
		text += len(line)
		if text > maxCommandText {
			return f.refuse(tag, line, "BAD", "[TOOBIG] Command too long")
		}
		prefix, n, nonSync, isLit := literalAnnounced(line)
		if !isLit {
			buf = append(buf, line...)
			piece()
			break
		}
		// APPEND's first literal is its mailbox when it follows the
		// name directly; any other is the message. Only the message
		// may be large: go-imap buffers the mailbox like any string,
		// and past 4096 octets it does not refuse it but parses the
		// literal's data as the rest of the command.
		message := name == "APPEND" && !(len(pieces) == 0 && len(prefix) == len(tag)+len(" APPEND ") && prefix[len(prefix)-1] == ' ')
		if message && n > maxSmallLiteral {
			if n > f.srv.appendLimit() {
				return f.refuse(tag, line, "NO", fmt.Sprintf("[TOOBIG] Message of %d octets exceeds the APPENDLIMIT of %d", n, f.srv.appendLimit()))
			}
			// Stream the message: the library gets the command so
			// far, then the literal as it arrives.
			buf = withNonSync(buf, prefix, n)
			piece()
			if !nonSync {
				f.writeNow("+ Ready for literal data\r\n")
			}
			f.startCommand(tag)
			f.cmdBuf = buf[:0]
			f.hand(buf, pieces)
			f.state, f.litLeft = inLiteral, n
			f.appendParen = bytes.HasSuffix(prefix, []byte("(~"))
			return nil
		}
		if n > maxSmallLiteral || lits+int(n) > maxCommandText {
			return f.refuse(tag, line, "NO", fmt.Sprintf("[TOOBIG] Literal of %d octets exceeds the %d-octet limit of %s", n, maxSmallLiteral, name))
		}
		afterMessage, paren = message, bytes.HasSuffix(prefix, []byte("(~"))
		buf = withNonSync(buf, prefix, n)
		piece()
		if !nonSync {
			f.writeNow("+ Ready for literal data\r\n")
		}
		lits += int(n)
		f.setReadDeadline(f.srv.commandTimeout())
		start := len(buf)
		buf = append(buf, make([]byte, n)...)
		if _, err := io.ReadFull(f.br, buf[start:]); err != nil {
			return err
		}
		piece()
		line, err = f.readLine(f.srv.commandTimeout(), maxLine, false)
		if errors.Is(err, errLineTooLong) {
			return f.refuse(tag, f.litBuf, "BAD", "[TOOBIG] Command line too long")
		}
		if err != nil {
			return err
		}
	}
	if cap(buf) <= 8<<10 {
		f.cmdBuf = buf[:0]
	} else {
		f.cmdBuf = nil // do not keep a big buffer per idle connection
	}

	if handled, err := f.intercept(tag, name, buf); handled {
		return err
	}
	f.startCommand(tag)
	f.hand(buf, pieces)
	f.state = inForwarded
	return nil
}

// hand queues a command for the library one piece (a line, or a literal's
// data) per read. Given the whole command at once, go-imap would keep in
// its buffer what follows a syntax error and read it as the next command;
// piece by piece, it holds only what it is parsing, and what it has not
// asked for when it answers is dropped.
func (f *frontConn) hand(buf []byte, pieces []int) {
	f.queued = f.queued[:0]
	start := 0
	for _, end := range pieces {
		f.queued = append(f.queued, buf[start:end])
		start = end
	}
	f.pending, f.queued = f.queued[0], f.queued[1:]
}

// lineFault names what in a command line (outside literals) go-imap would
// read differently from the front: a NUL; a CR that does not end the line,
// which go-imap takes for a line end when it discards the rest of a bad
// command, and so reads what follows as a new command; a quoted string
// still open at the end of the line, which go-imap reads on across the
// CRLF, into what the front takes for literal data or the next command.
// Quoting follows go-imap: a backslash escapes any octet.
func lineFault(line []byte) string {
	body := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	quoted, escaped := false, false
	for _, c := range body {
		switch {
		case c == 0:
			return "NUL octet in command"
		case c == '\r':
			return "CR without LF in command"
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		}
	}
	if quoted {
		return "Quoted string not closed at the end of the line"
	}
	return ""
}

// appendEnd reports whether line, the one after an APPEND's message
// literal, ends the command as go-imap expects: ")" when the message came
// as UTF8 (~{n}), then an optional space and CRLF or LF. Anything else
// there makes go-imap store the message and then drop the command without
// an answer, and read on as if a new command started.
func appendEnd(line []byte, paren bool) bool {
	if paren {
		if len(line) == 0 || line[0] != ')' {
			return false
		}
		line = line[1:]
	}
	switch string(line) {
	case "\n", "\r\n", " \n", " \r\n":
		return true
	}
	return false
}

// startCommand notes the tag whose tagged response completes the command.
func (f *frontConn) startCommand(tag string) {
	f.mu.Lock()
	f.tag, f.completed, f.cont = tag, false, false
	f.mu.Unlock()
}

// refuse answers a command the library never sees. line is its last line
// read: when that announces a literal, a synchronizing one is simply not
// sent by the client, and a non-synchronizing one is already on its way
// and is skipped, or closes the connection when larger than anything the
// server would accept (RFC 7888, section 4).
func (f *frontConn) refuse(tag string, line []byte, status, text string) error {
	if tag == "" {
		tag = "*"
	}
	f.writeNow(tag + " " + status + " " + text + "\r\n")
	return f.skipAnnounced(line)
}

// skipAnnounced skips what remains of a command whose answer has been
// given, from the non-synchronizing literal line announces on.
func (f *frontConn) skipAnnounced(line []byte) error {
	_, n, nonSync, isLit := literalAnnounced(line)
	if !isLit || !nonSync {
		return nil
	}
	if n > f.srv.appendLimit() {
		f.writeNow("* BYE [TOOBIG] Non-synchronizing literal too large\r\n")
		return errHangUp
	}
	f.state, f.litLeft = inLiteral, n
	return f.discardCommand()
}

// discardCommand drops the rest of a command whose answer has been given:
// in inLiteral, the literal's remaining octets (the client is sending
// them: it was non-synchronizing or got its "+"), then the lines after it
// and every non-synchronizing literal they announce.
func (f *frontConn) discardCommand() error {
	for {
		if f.state == inLiteral && f.litLeft > 0 {
			f.setReadDeadline(f.srv.commandTimeout())
			if _, err := io.CopyN(io.Discard, f.br, f.litLeft); err != nil {
				return err
			}
		}
		if f.state != inLiteral && f.state != inArgs {
			f.state = inNew
			return nil
		}
		line, err := f.readLine(f.srv.commandTimeout(), maxCommandText, false)
		if errors.Is(err, errLineTooLong) {
			line = f.litBuf
		} else if err != nil {
			return err
		}
		_, n, nonSync, isLit := literalAnnounced(line)
		switch {
		case !isLit || !nonSync:
			// The end of the command, or a synchronizing literal the
			// client will not send now that it has its answer.
			f.state = inNew
			return nil
		case n > f.srv.appendLimit():
			f.writeNow("* BYE [TOOBIG] Non-synchronizing literal too large\r\n")
			return errHangUp
		}
		f.state, f.litLeft = inLiteral, n
	}
}

// passLiteral hands the library the next piece of a streamed literal.
func (f *frontConn) passLiteral() error {
	if cap(f.litBuf) < 32<<10 {
		f.litBuf = make([]byte, 32<<10)
	}
	buf := f.litBuf[:cap(f.litBuf)]
	if int64(len(buf)) > f.litLeft {
		buf = buf[:f.litLeft]
	}
	f.mu.Lock()
	err := f.flushLocked()
	f.mu.Unlock()
	if err != nil {
		return err
	}
	f.setReadDeadline(f.srv.commandTimeout())
	n, err := f.br.Read(buf)
	if n > 0 {
		f.litLeft -= int64(n)
		f.pending = buf[:n]
		if f.litLeft == 0 {
			f.state = inArgs
			f.litBuf = nil // 32 KiB is not kept per idle connection
		}
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// readArgs passes the end of a streamed APPEND after its message. The
// library has the message by now, so anything but the end go-imap expects
// (see appendEnd) cannot be refused as a whole: it is answered with an
// untagged BAD and skipped, and the library gets the plain end, so that it
// answers the APPEND.
func (f *frontConn) readArgs() error {
	line, err := f.readLine(f.srv.commandTimeout(), f.srv.maxLine(), false)
	tooLong := errors.Is(err, errLineTooLong)
	if err != nil && !tooLong {
		return err
	}
	f.state = inForwarded
	if !tooLong && appendEnd(line, f.appendParen) {
		f.pending = line
		return nil
	}
	f.writeNow("* BAD [CLIENTBUG] Only one message per APPEND, and nothing after it: ignored\r\n")
	if tooLong {
		line = f.litBuf
	}
	if err := f.skipAnnounced(line); err != nil {
		return err
	}
	f.state = inForwarded
	f.pending = []byte("\r\n")
	if f.appendParen {
		f.pending = []byte(")\r\n")
	}
	return nil
}

// ---- writing: library → client ----

func (f *frontConn) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, net.ErrClosed
	}
	if f.outErr != nil {
		return 0, f.outErr
	}
	f.scanOut(p)
	if f.split != "" {
		f.divergeLocked(f.split)
	}
	if f.outErr != nil {
		return 0, f.outErr
	}
	if len(f.out) >= outFlushAt || f.atRest {
		// atRest: the reader is blocked on the client, so this is an
		// unsolicited update (IDLE) that must go out now.
		if err := f.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// writeNow writes a response of the front's own and flushes it.
func (f *frontConn) writeNow(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.own = true
	f.scanOut([]byte(s))
	f.own = false
	f.flushLocked()
}

// flushLocked writes the buffered output; f.mu is held.
func (f *frontConn) flushLocked() error {
	if f.outErr != nil {
		return f.outErr
	}
	if len(f.out) == 0 {
		return nil
	}
	f.raw.SetWriteDeadline(time.Now().Add(f.srv.writeTimeout()))
	_, err := f.raw.Write(f.out)
	if cap(f.out) > 64<<10 {
		f.out = nil
	} else {
		f.out = f.out[:0]
	}
	if err != nil {
		f.outErr = err
	}
	return err
}

// scanOut follows the library's output: it finds line starts (to see
// tagged completions, continuation requests and capability lists) and
// skips literal data by its announced length. f.mu is held.
func (f *frontConn) scanOut(p []byte) {
	for len(p) > 0 && f.outErr == nil && f.split == "" {
		switch f.os {
		case outLiteral:
			n := int(min(int64(len(p)), f.outLit))
			f.out = append(f.out, p[:n]...)
			p = p[n:]
			f.outLit -= int64(n)
			if f.outLit == 0 {
				f.os = outLine
			}
			if len(f.out) >= outFlushAt {
				f.flushLocked()
			}
		case outLine:
			i, lit, end := 0, int64(-1), false
			for i < len(p) {
				b := p[i]
				i++
				if n, ok := f.det.feed(b); ok {
					lit = n
					break
				}
				if b == '\n' {
					end = true
					break
				}
			}
			f.out = append(f.out, p[:i]...)
			p = p[i:]
			switch {
			case lit >= 0:
				f.startOutLiteral(lit)
			case end:
				f.os = outHead
			}
		case outHead, outCap:
			i, lit, end := 0, int64(-1), false
			for i < len(p) {
				b := p[i]
				i++
				f.head = append(f.head, b)
				if n, ok := f.det.feed(b); ok {
					lit = n
					break
				}
				if b == '\n' {
					end = true
					break
				}
				if f.os == outHead && len(f.head) >= f.headMax() || f.os == outCap && len(f.head) >= capLineMax {
					break
				}
			}
			p = p[i:]
			if f.os == outHead {
				if !end && lit < 0 && len(f.head) < f.headMax() {
					continue // need more of the line to judge it
				}
				if f.classify(end) {
					f.os = outCap
					if !end {
						continue
					}
				}
				if f.split != "" {
					return // the line is not sent; Write ends the connection
				}
			}
			if f.os == outCap && end {
				f.head = f.addCaps(f.head)
			}
			f.out = append(f.out, f.head...)
			f.head = f.head[:0]
			switch {
			case lit >= 0:
				f.startOutLiteral(lit)
			case end:
				f.os = outHead
			default:
				f.os = outLine
			}
		}
	}
}

// headMax is how much of an output line classify needs: the tag of the
// command being forwarded, however long, and what follows it up to
// "PREAUTH [CAPABILITY ".
func (f *frontConn) headMax() int { return max(headMax, len(f.tag)+32) }

func (f *frontConn) startOutLiteral(n int64) {
	f.det = literalDetector{}
	if n == 0 {
		f.os = outLine
		return
	}
	f.os, f.outLit = outLiteral, n
}

// classify looks at the start of an output line; it reports whether the
// line is a capability list to complete. whole says the line has ended.
// A tagged response from the library completes the command being
// forwarded; one with another tag, or a second one, answers a command the
// front never forwarded, and marks the connection as diverged.
func (f *frontConn) classify(whole bool) bool {
	h := f.head
	switch {
	case len(h) > 0 && h[0] == '+':
		if !f.own {
			f.cont = true
		}
		return false
	case bytes.HasPrefix(h, []byte("* CAPABILITY ")):
		return true
	case bytes.HasPrefix(h, []byte("* BYE")):
		return false
	}
	sp := bytes.IndexByte(h, ' ')
	if sp <= 0 {
		return false
	}
	tag, rest := h[:sp], h[sp+1:]
	if string(tag) != "*" && !f.own && (bytes.HasPrefix(rest, []byte("OK")) || bytes.HasPrefix(rest, []byte("NO")) || bytes.HasPrefix(rest, []byte("BAD"))) {
		switch {
		case string(tag) != f.tag:
			f.split = fmt.Sprintf("the library answered %q", tag)
		case f.completed:
			f.split = "the library answered the command twice"
		default:
			f.completed = true
		}
	}
	return bytes.HasPrefix(rest, []byte("OK [CAPABILITY ")) || bytes.HasPrefix(rest, []byte("PREAUTH [CAPABILITY "))
}

// addCaps completes a capability list with what the library cannot know:
// STARTTLS and LOGINDISABLED before login, QUOTA after.
func (f *frontConn) addCaps(line []byte) []byte {
	var extra []string
	authed := f.sess != nil && f.sess.loggedIn()
	if !authed {
		if f.srv.tlsConfig != nil && !f.isTLS {
			extra = append(extra, "STARTTLS")
		}
		if !f.isTLS && !f.srv.AllowInsecureAuth {
			extra = append(extra, "LOGINDISABLED")
		}
	} else if f.srv.Quotas != nil {
		extra = append(extra, "QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE")
	}
	if len(extra) == 0 {
		return line
	}
	at := -1
	if bytes.HasPrefix(line, []byte("* CAPABILITY ")) {
		at = len(bytes.TrimRight(line, "\r\n"))
	} else if i := bytes.Index(line, []byte("[CAPABILITY ")); i >= 0 {
		if j := bytes.IndexByte(line[i:], ']'); j > 0 {
			at = i + j
		}
	}
	if at < 0 {
		return line
	}
	var b []byte
	b = append(b, line[:at]...)
	for _, c := range extra {
		b = append(b, ' ')
		b = append(b, c...)
	}
	return append(b, line[at:]...)
}

// literalDetector recognises "{n}" CRLF in output, byte by byte.
type literalDetector struct {
	stage uint8 // 0 none, 1 after '{', 2 digits, 3 after '}', 4 after CR
	n     int64
}

func (d *literalDetector) feed(b byte) (int64, bool) {
	switch {
	case b == '{':
		d.stage, d.n = 1, 0
	case b >= '0' && b <= '9' && (d.stage == 1 || d.stage == 2):
		d.stage = 2
		if d.n < 1<<50 {
			d.n = d.n*10 + int64(b-'0')
		}
	case b == '}' && d.stage == 2:
		d.stage = 3
	case b == '\r' && d.stage == 3:
		d.stage = 4
	case b == '\n' && (d.stage == 3 || d.stage == 4):
		d.stage = 0
		return d.n, true
	default:
		d.stage = 0
	}
	return 0, false
}

// ---- STARTTLS ----

// startTLS answers STARTTLS and switches the transport. Plaintext the
// client pipelined behind the command is dropped, never read as commands
// inside TLS (the STARTTLS command injection attack).
func (f *frontConn) startTLS(tag string, args []byte) error {
	switch {
	case len(bytes.TrimSpace(args)) > 0:
		f.writeNow(tag + " BAD [CLIENTBUG] STARTTLS takes no arguments\r\n")
		return nil
	case f.usingTLS():
		f.writeNow(tag + " BAD [CLIENTBUG] TLS is already active\r\n")
		return nil
	case f.sess != nil && f.sess.loggedIn():
		f.writeNow(tag + " BAD [CLIENTBUG] STARTTLS is only valid before login\r\n")
		return nil
	case f.srv.tlsConfig == nil:
		f.writeNow(tag + " NO STARTTLS is not available\r\n")
		return nil
	}
	f.writeNow(tag + " OK Begin TLS negotiation now\r\n")
	if n := f.br.Buffered(); n > 0 {
		f.br.Discard(n)
	}
	f.mu.Lock()
	raw := f.raw
	f.mu.Unlock()
	tc := tls.Server(raw, f.srv.tlsConfig)
	tc.SetDeadline(time.Now().Add(f.srv.handshakeTimeout()))
	if err := tc.HandshakeContext(f.ctx); err != nil {
		f.srv.logger().Debug("imap starttls handshake", "remote", raw.RemoteAddr().String(), "err", err)
		return err
	}
	tc.SetDeadline(time.Time{})
	f.mu.Lock()
	f.raw, f.isTLS = tc, true
	f.mu.Unlock()
	f.br.Reset(tc)
	return nil
}

// msgDiverged is logged when the front and go-imap disagree on where a
// command ends.
const msgDiverged = "imap command stream diverged"
