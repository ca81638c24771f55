package imap

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/vmaild/vmaild/internal/scriptconn"
	"github.com/vmaild/vmaild/protocols/gate"
)

// The front must never hand go-imap bytes that the library reads as a
// command other than the one the front forwarded. FuzzFrontDifferential
// checks that with the library itself as the oracle: a real imapserver
// behind the front reads a fuzzed client stream, and a recording session
// and a tap between the two compare, for every command the library
// dispatched, its tag and name with the front's view of the command it
// was handing over. Nothing is mocked on the front's side; the session
// behind the library is a recorder so that every command reaches the
// library's dispatch (LOGIN always succeeds, folders always exist).
//
// Run long with ./fuzz.sh, or
//
//	go test -run '^$' -fuzz '^FuzzFrontDifferential$' -parallel 1 ./protocols/imap/
func FuzzFrontDifferential(f *testing.F) {
	for _, s := range frontSeeds {
		f.Add(uint8(0), []byte(s))
	}
	h := newFrontHarness(f)
	f.Fuzz(func(t *testing.T, chunk uint8, input []byte) {
		h.run(t, int(chunk), input)
	})
}

// frontSeeds are client streams worth starting from: each command family,
// literals of every form, and the known ways to desynchronise a
// byte-level front.
var frontSeeds = []string{
	"A1 CAPABILITY\r\nA2 NOOP\r\nA3 LOGOUT\r\n",
	"A1 LOGIN user pass\r\nA2 SELECT INBOX\r\nA3 FETCH 1 (FLAGS BODY.PEEK[])\r\nA4 LOGOUT\r\n",
	"A1 LOGIN {4}\r\nuser {4+}\r\npass\r\nA2 LIST \"\" *\r\n",
	"A1 LOGIN u p\r\nA2 APPEND INBOX (\\Seen) {5}\r\nhello\r\nA3 NOOP\r\n",
	"A1 LOGIN u p\r\nA2 APPEND INBOX {5+}\r\nhello {5+}\r\nA3 NOOP\r\n",
	"A1 LOGIN u p\r\nA2 APPEND INBOX UTF8 (~{5+}\r\nhello)\r\n",
	"A1 LOGIN u p\r\nA2 APPEND {5}\r\nINBOX ~{3}\r\nabc\r\n",
	"A1 NOOP x{11}\r\nA2 LOGOUT\r\nA3 NOOP\r\n",
	"A1 NOOP x{11+}\r\nA2 LOGOUT\r\nA3 NOOP\r\n",
	"A1 LOGIN \"a\r\nA2 LOGOUT\r\n\" b\r\n",
	"A1 LOGIN \"a {5}\r\nA2 LOGOUT\r\n",
	"A1 NOOP x\rA2 LOGOUT\r\n",
	"A1 LOGIN {5} \r\nuser1 p\r\n",
	"A1 LOGIN u p\r\nA2 IDLE\r\nDONE\r\nA3 SELECT \"INBOX\"\r\n",
	"A1 AUTHENTICATE PLAIN\r\nAHUAcA==\r\nA2 NOOP\r\n",
	"A1 LOGIN u p\r\nA2 SELECT INBOX\r\nA3 UID SEARCH CHARSET UTF-8 SUBJECT {3}\r\nabc\r\nA4 STORE 1 +FLAGS (\\Seen)\r\n",
	"A1 LOGIN u p\r\nA2 STATUS {5}\r\nINBOX (MESSAGES)\r\nA3 CREATE \"a\\\"b\"\r\nA4 RENAME a b\r\n",
	"A1 GETQUOTAROOT INBOX\r\nA2 STARTTLS\r\nA3 NOOP\r\n",
	"A1 LOGIN u p\r\nA2 SELECT INBOX\r\nA3 COPY 1 {5}\r\nTrash\r\nA4 MOVE 1 Trash\r\nA5 EXPUNGE\r\n",
}

// gatedConn passes c through a connection gate of its own, as every
// served connection is, and returns the gate's view of it.
func gatedConn(tb testing.TB, c net.Conn) *gate.Conn {
	tb.Helper()
	sl := scriptconn.NewListener()
	gl, err := (&gate.Gate{}).Listen(sl, gate.Service{Name: "imap"})
	if err != nil {
		tb.Fatal(err)
	}
	defer gl.Close()
	go sl.Dial(c)
	ac, err := gl.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	return ac.(*gate.Conn)
}

// frontHarness is one go-imap server behind which every fuzzed connection
// is served; it lives as long as the fuzzing process.
type frontHarness struct {
	srv  *Server
	lib  *imapserver.Server
	ln   *scriptconn.Listener
	logs *logTrap
}

func newFrontHarness(tb testing.TB) *frontHarness {
	h := &frontHarness{ln: scriptconn.NewListener(), logs: &logTrap{}}
	h.srv = &Server{Logger: slog.New(h.logs), AllowInsecureAuth: true}
	h.srv.mu.Lock()
	h.srv.init()
	h.srv.mu.Unlock()
	h.lib = imapserver.New(&imapserver.Options{
		NewSession:   h.newSession,
		Caps:         libraryCaps(),
		Logger:       libLogger{h.srv.logger()},
		InsecureAuth: true,
	})
	go h.lib.Serve(h.ln)
	return h
}

// run serves one connection reading input (in pieces of chunk octets, 0
// for as much as is asked) and checks the library's view against the
// front's.
func (h *frontHarness) run(t *testing.T, chunk int, input []byte) {
	sc := scriptconn.New(input, chunk)
	gc := gatedConn(t, sc)
	fc := newFrontConn(h.srv, gc, gc)
	tp := &tapConn{frontConn: fc, closed: make(chan struct{})}
	h.logs.reset()
	h.ln.Dial(tp)
	select {
	case <-tp.closed:
	case <-time.After(20 * time.Second):
		t.Fatalf("connection still open 20s after its input ended: the server hangs\ninput %q", input)
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for _, p := range tp.problems {
		t.Errorf("%s", p)
	}
	if msg := h.logs.diverged(); msg != "" {
		t.Errorf("front detected a divergence: %s", msg)
	}
	if t.Failed() {
		t.Logf("input %q\noutput %q", input, sc.Output())
	}
}

// tapConn sits between the front and the library: it sees every byte the
// library reads and every response it writes.
type tapConn struct {
	*frontConn
	closed    chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	out      []byte // library output not yet split into lines
	litSkip  int64  // literal octets of the library's output still to skip
	problems []string
}

func (tp *tapConn) Close() error {
	err := tp.frontConn.Close()
	tp.closeOnce.Do(func() { close(tp.closed) })
	return err
}

func (tp *tapConn) Write(p []byte) (int, error) {
	tp.mu.Lock()
	tp.scan(p)
	tp.mu.Unlock()
	return tp.frontConn.Write(p)
}

// scan finds the library's tagged responses. A response must answer the
// command the front is forwarding, and only once.
func (tp *tapConn) scan(p []byte) {
	for len(p) > 0 {
		if tp.litSkip > 0 {
			n := min(int64(len(p)), tp.litSkip)
			tp.litSkip -= n
			p = p[n:]
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			tp.out = append(tp.out, p...)
			return
		}
		line := append(tp.out, p[:i+1]...)
		tp.out = nil
		p = p[i+1:]
		if n, ok := outputLiteral(line); ok {
			tp.litSkip = n
		}
		tag, rest, _ := bytes.Cut(line, []byte(" "))
		if string(tag) == "*" || string(tag) == "+" {
			continue
		}
		status, _, _ := bytes.Cut(rest, []byte(" "))
		switch string(bytes.TrimRight(status, "\r\n")) {
		case "OK", "NO", "BAD":
		default:
			tp.problems = append(tp.problems, "library wrote an unexpected line "+strconv.Quote(string(line)))
			continue
		}
		f := tp.frontConn
		f.mu.Lock()
		frontTag, answered := f.tag, f.completed
		f.mu.Unlock()
		switch {
		case string(tag) != frontTag:
			tp.problems = append(tp.problems, "library answered "+strconv.Quote(string(tag))+" while the front was forwarding "+strconv.Quote(frontTag)+": "+strconv.Quote(string(line)))
		case answered:
			tp.problems = append(tp.problems, "library answered "+strconv.Quote(frontTag)+" twice: "+strconv.Quote(string(line)))
		}
	}
}

// outputLiteral reports a literal announced at the end of an output line.
func outputLiteral(line []byte) (int64, bool) {
	l := bytes.TrimRight(line, "\r\n")
	if len(l) < 3 || l[len(l)-1] != '}' {
		return 0, false
	}
	open := bytes.LastIndexByte(l, '{')
	if open < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(l[open+1:len(l)-1]), 10, 64)
	return n, err == nil
}

// called records that the library dispatched a command to the session;
// its name must be one the front is forwarding.
func (tp *tapConn) called(method string, names ...string) {
	name := tp.frontConn.cmdName // read on the library's goroutine, which sets it
	for _, n := range names {
		if n == name {
			return
		}
	}
	tp.mu.Lock()
	tp.problems = append(tp.problems, "library called Session."+method+" while the front was forwarding "+strconv.Quote(name))
	tp.mu.Unlock()
}

// logTrap keeps the front's divergence reports.
type logTrap struct {
	mu  sync.Mutex
	msg string
}

func (l *logTrap) Enabled(context.Context, slog.Level) bool { return true }
func (l *logTrap) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logTrap) WithGroup(string) slog.Handler            { return l }
func (l *logTrap) Handle(_ context.Context, r slog.Record) error {
	if r.Message != msgDiverged {
		return nil
	}
	var b strings.Builder
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(a.String() + " ")
		return true
	})
	l.mu.Lock()
	l.msg = b.String()
	l.mu.Unlock()
	return nil
}

func (l *logTrap) reset() {
	l.mu.Lock()
	l.msg = ""
	l.mu.Unlock()
}

func (l *logTrap) diverged() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msg
}

// recSession is the session behind the library: every command succeeds
// and reports to the tap which Session method the library chose.
type recSession struct{ tp *tapConn }

func (h *frontHarness) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	tp, ok := c.NetConn().(*tapConn)
	if !ok {
		return nil, nil, errors.New("connection without tap")
	}
	return &recSession{tp: tp}, nil, nil
}

var (
	_ imapserver.SessionIMAP4rev2      = (*recSession)(nil)
	_ imapserver.SessionUnauthenticate = (*recSession)(nil)
	_ imapserver.SessionAppendLimit    = (*recSession)(nil)
)

func (s *recSession) Close() error { return nil }

func (s *recSession) Login(username, password string) error {
	s.tp.called("Login", "LOGIN", "AUTHENTICATE")
	return nil
}

func (s *recSession) Select(mailbox string, options *goimap.SelectOptions) (*goimap.SelectData, error) {
	s.tp.called("Select", "SELECT", "EXAMINE")
	return &goimap.SelectData{NumMessages: 1, UIDNext: 2, UIDValidity: 1}, nil
}

func (s *recSession) Create(mailbox string, options *goimap.CreateOptions) error {
	s.tp.called("Create", "CREATE")
	return nil
}

func (s *recSession) Delete(mailbox string) error {
	s.tp.called("Delete", "DELETE")
	return nil
}

func (s *recSession) Rename(mailbox, newName string, options *goimap.RenameOptions) error {
	s.tp.called("Rename", "RENAME")
	return nil
}

func (s *recSession) Subscribe(mailbox string) error {
	s.tp.called("Subscribe", "SUBSCRIBE")
	return nil
}

func (s *recSession) Unsubscribe(mailbox string) error {
	s.tp.called("Unsubscribe", "UNSUBSCRIBE")
	return nil
}

func (s *recSession) List(w *imapserver.ListWriter, ref string, patterns []string, options *goimap.ListOptions) error {
	s.tp.called("List", "LIST", "LSUB")
	return nil
}

func (s *recSession) Status(mailbox string, options *goimap.StatusOptions) (*goimap.StatusData, error) {
	s.tp.called("Status", "STATUS", "LIST")
	return &goimap.StatusData{Mailbox: mailbox}, nil
}

func (s *recSession) Append(mailbox string, r goimap.LiteralReader, options *goimap.AppendOptions) (*goimap.AppendData, error) {
	s.tp.called("Append", "APPEND")
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, err
	}
	return &goimap.AppendData{UID: 1, UIDValidity: 1}, nil
}

func (s *recSession) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error { return nil }

// Idle is not checked: go-imap runs it on a goroutine of its own that may
// start after the library has moved on (it returns from a bad DONE without
// waiting for it); the tagged answer to IDLE is checked like any other.
func (s *recSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	<-stop
	return nil
}

func (s *recSession) Unselect() error {
	s.tp.called("Unselect", "CLOSE", "UNSELECT", "SELECT", "EXAMINE")
	return nil
}

func (s *recSession) Expunge(w *imapserver.ExpungeWriter, uids *goimap.UIDSet) error {
	s.tp.called("Expunge", "EXPUNGE", "UID EXPUNGE", "CLOSE")
	return nil
}

func (s *recSession) Search(kind imapserver.NumKind, criteria *goimap.SearchCriteria, options *goimap.SearchOptions) (*goimap.SearchData, error) {
	s.tp.called("Search", "SEARCH", "UID SEARCH")
	if kind == imapserver.NumKindUID {
		return &goimap.SearchData{All: goimap.UIDSet{}}, nil
	}
	return &goimap.SearchData{All: goimap.SeqSet{}}, nil
}

func (s *recSession) Fetch(w *imapserver.FetchWriter, numSet goimap.NumSet, options *goimap.FetchOptions) error {
	s.tp.called("Fetch", "FETCH", "UID FETCH")
	return nil
}

func (s *recSession) Store(w *imapserver.FetchWriter, numSet goimap.NumSet, flags *goimap.StoreFlags, options *goimap.StoreOptions) error {
	s.tp.called("Store", "STORE", "UID STORE")
	return nil
}

func (s *recSession) Copy(numSet goimap.NumSet, dest string) (*goimap.CopyData, error) {
	s.tp.called("Copy", "COPY", "UID COPY")
	return nil, nil
}

func (s *recSession) Move(w *imapserver.MoveWriter, numSet goimap.NumSet, dest string) error {
	s.tp.called("Move", "MOVE", "UID MOVE")
	return nil
}

func (s *recSession) Namespace() (*goimap.NamespaceData, error) {
	s.tp.called("Namespace", "NAMESPACE")
	return &goimap.NamespaceData{}, nil
}

func (s *recSession) Unauthenticate() error {
	s.tp.called("Unauthenticate", "UNAUTHENTICATE")
	return nil
}

func (s *recSession) AppendLimit() uint32 { return uint32(DefaultAppendLimit) }

// TestFrontDivergence drives the front as go-imap would if it read the
// stream differently: the front must log, say BYE and close, not carry on.
func TestFrontDivergence(t *testing.T) {
	tests := []struct {
		name string
		// lib acts as the library after reading the first command
		lib  func(f *frontConn) error
		want string // reason logged
	}{
		{"answers another tag", func(f *frontConn) error {
			_, err := f.Write([]byte("A2 OK NOOP completed\r\n"))
			return err
		}, `the library answered "A2"`},
		{"answers twice", func(f *frontConn) error {
			f.Write([]byte("A1 OK NOOP completed\r\n"))
			_, err := f.Write([]byte("A1 OK NOOP completed\r\n"))
			return err
		}, "the library answered the command twice"},
		{"reads past the command", func(f *frontConn) error {
			_, err := f.Read(make([]byte, 4096))
			return err
		}, "the library reads past the end of the command"},
		{"asks for a continuation before literal data", func(f *frontConn) error {
			f.Write([]byte("+ go on\r\n"))
			_, err := f.Read(make([]byte, 4096))
			return err
		}, "continuation request before the command's literal data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logTrap{}
			srv := &Server{Logger: slog.New(logs)}
			srv.mu.Lock()
			srv.init()
			srv.mu.Unlock()
			in := "A1 NOOP\r\nA2 NOOP\r\n"
			if strings.Contains(tc.name, "literal") {
				in = "A1 LOGIN {1+}\r\nx y\r\nA2 NOOP\r\n"
			}
			sc := scriptconn.New([]byte(in), 0)
			gc := gatedConn(t, sc)
			f := newFrontConn(srv, gc, gc)
			// The library reads the first line of A1.
			if _, err := f.Read(make([]byte, 4096)); err != nil {
				t.Fatal(err)
			}
			if err := tc.lib(f); !errors.Is(err, errHangUp) {
				t.Fatalf("library call: %v, want errHangUp", err)
			}
			if got := logs.diverged(); !strings.Contains(got, tc.want) {
				t.Errorf("log %q, want reason %q", got, tc.want)
			}
			if out := string(sc.Output()); !strings.HasSuffix(out, "* BYE [CLIENTBUG] Command stream out of step, closing connection\r\n") || strings.Contains(out, "A2 OK") {
				t.Errorf("client got %q", out)
			}
			if _, err := f.Read(make([]byte, 10)); err == nil {
				t.Error("the library can read on")
			}
			if _, err := sc.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
				t.Errorf("transport not closed: %v", err)
			}
		})
	}
}

// FuzzQuotaArgs: the front's own argument parser (for the QUOTA commands
// it answers itself) never panics, and what it echoes back of an argument
// cannot break the response line: it is an atom or quoted string without
// CR or LF that reads back as the same value, or a literal of exactly the
// announced length.
func FuzzQuotaArgs(f *testing.F) {
	for _, s := range []string{`INBOX`, `"a\"b\\c" x`, "{5+}\r\nINBOX", "{3+}\r\na\r\n", `"&AOk-"`, `&2D3cAA-`, `"unterminated`, "{99+}\r\nshort", "a]b (x)"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		args, err := parseAStrings(in)
		if err != nil {
			return
		}
		for _, a := range args {
			if n, ok := strings.CutPrefix(a.raw, "{"); ok {
				size, rest, _ := strings.Cut(n, "}\r\n")
				if size != strconv.Itoa(len(rest)) || rest != a.text {
					t.Fatalf("argument %q echoed as literal %q", a.text, a.raw)
				}
				continue
			}
			if strings.ContainsAny(a.raw, "\r\n") {
				t.Fatalf("argument %q echoed as %q", a.text, a.raw)
			}
			back, err := parseAStrings([]byte(a.raw))
			if err != nil || len(back) != 1 || back[0].text != a.text {
				t.Fatalf("argument %q echoed as %q, which reads back as %v, %v", a.text, a.raw, back, err)
			}
			mailboxName(a.text, false)
		}
	})
}
