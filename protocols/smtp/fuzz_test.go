package smtp

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/inbound"
	"github.com/vmaild/vmaild/internal/scriptconn"
	"github.com/vmaild/vmaild/userdb"
)

// FuzzCheckAddress: an address is either refused with a 5xx reply of the
// right wording, or accepted as exactly what userdb.Canonical makes of it;
// an accepted address checks again to itself (canonical and as sent on
// to a remote server), and nothing userdb refuses gets through.
func FuzzCheckAddress(f *testing.F) {
	for _, s := range []string{
		"alice@example.org", "Alice.Smith+tag@Example.ORG", "user@other@example.org",
		"user%host@example.org", "host!user@example.org", "user@[192.0.2.1]", "user@example.org.",
		"a\x00b@example.org", "\"quoted\"@example.org", "@example.org", "user@", "jörg@münchen.de",
		".a@example.org", "a..b@example.org", "user@-example.org", "user@exa_mple.org",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, addr string, sender bool) {
		a, e := checkAddress(addr, sender)
		want, err := userdb.Canonical(addr)
		if e != nil {
			wording := "Recipient address rejected: "
			if sender {
				wording = "Sender address rejected: "
			}
			if e.Code/100 != 5 || e.EnhancedCode[0] != 5 || !strings.HasPrefix(e.Message, wording) || sender && e.Code != 553 {
				t.Fatalf("checkAddress(%q, %v) refused with %d %v %q", addr, sender, e.Code, e.EnhancedCode, e.Message)
			}
			return
		}
		if err != nil {
			t.Fatalf("checkAddress(%q) accepted what userdb refuses: %v", addr, err)
		}
		if a.canonical() != want || a.local != strings.ToLower(a.local) || a.domain != strings.ToLower(a.domain) {
			t.Fatalf("checkAddress(%q) = %q (%+v), userdb says %q", addr, a.canonical(), a, want)
		}
		for _, again := range []string{a.canonical(), a.remote()} {
			b, e := checkAddress(again, sender)
			if e != nil || b.canonical() != a.canonical() {
				t.Fatalf("checkAddress(%q) = %q, but %q checks to %+v, %v", addr, a.canonical(), again, b, e)
			}
		}
	})
}

// FuzzSession runs whole client sessions through a Server of each role,
// from a fuzzed command stream, with the fake directory and agent. The
// server must never panic or hang, must answer only with well-formed
// replies whose enhanced code is of the reply's class, and must never
// relay: the MTA (no AUTH without TLS here, no trusted networks) and LMTP
// deliver only to local domains, and submission delivers only after a
// successful AUTH.
//
// Run long with ./fuzz.sh, or
//
//	go test -run '^$' -fuzz '^FuzzSession$' -parallel 1 ./protocols/smtp/
func FuzzSession(f *testing.F) {
	auth := "AUTH PLAIN " + plainIR("alice@example.org", "secret-alice") + "\r\n"
	seeds := []struct {
		role   Role
		script string
	}{
		{RoleMTA, "EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n"},
		{RoleMTA, "EHLO c\r\nMAIL FROM:<a@remote.test> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<bob@remote.test>\r\nRCPT TO:<\"x@y\"@example.org>\r\nRCPT TO:<u%v@example.org>\r\nRSET\r\nNOOP\r\nVRFY x\r\n"},
		{RoleMTA, "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<sales@example.org>\r\nBDAT 12 LAST\r\nSubject: x\r\n\r\nQUIT\r\n"},
		{RoleMTA, "EHLO c\r\nMAIL FROM:<jörg@remote.test> SMTPUTF8\r\nRCPT TO:<carol@example.net>\r\nDATA\r\n.\r\n"},
		{RoleMTA, "EHLO c\r\nSTARTTLS\r\nAUTH PLAIN\r\n*\r\nXYZZY\r\n\r\nDATA\r\n"},
		{RoleSubmission, "EHLO c\r\n" + auth + "MAIL FROM:<alice@example.org>\r\nRCPT TO:<someone@remote.test>\r\nDATA\r\nFrom: alice@example.org\r\nSubject: x\r\n\r\nhi\r\n.\r\n"},
		{RoleSubmission, "EHLO c\r\nAUTH LOGIN\r\nYWxpY2VAZXhhbXBsZS5vcmc=\r\nc2VjcmV0LWFsaWNl\r\nMAIL FROM:<sales@example.org>\r\nRCPT TO:<x@remote.test>\r\nBDAT 4\r\nab\r\nBDAT 0 LAST\r\n"},
		{RoleSubmission, "EHLO c\r\nMAIL FROM:<alice@example.org>\r\nAUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHdyb25n\r\n"},
		{RoleMTA, "EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.org>\r\nBDAT 0\r\n"}, // hang-up after a chunk: go-smtp's BDAT race
		{RoleMTA, "EHLO c\r\nQUIT\r\nMAIL FROM:<>\r\n"}, // go-smtp reads on after QUIT
		{RoleLMTP, "LHLO c\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<full@example.org>\r\nRCPT TO:<x@remote.test>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n"},
	}
	for _, s := range seeds {
		f.Add(uint8(s.role), uint8(0), []byte(s.script))
	}
	h := newSessionHarness(f)
	f.Fuzz(func(t *testing.T, role, chunk uint8, script []byte) {
		h.run(t, Role(role%3), int(chunk), script)
	})
}

type sessionHarness struct {
	servers [3]*harnessServer
}

type harnessServer struct {
	srv   *Server
	agent *fakeAgent
	ln    *scriptconn.Listener
	logs  *panicTrap
}

func newSessionHarness(tb testing.TB) *sessionHarness {
	h := &sessionHarness{}
	for _, role := range []Role{RoleMTA, RoleSubmission, RoleLMTP} {
		dir := newFakeDirectory()
		hs := &harnessServer{agent: newFakeAgent(dir), ln: scriptconn.NewListener(), logs: &panicTrap{}}
		hs.srv = &Server{
			Role:              role,
			Hostname:          "mx.example.org",
			Directory:         dir,
			Agent:             hs.agent,
			AllowInsecureAuth: role == RoleSubmission,
			Logger:            slog.New(hs.logs),
			SpoolDir:          tb.TempDir(),
			MaxMessageBytes:   64 << 10,
			MemorySpoolBytes:  4 << 10,
		}
		go hs.srv.Serve(hs.ln)
		h.servers[role] = hs
	}
	return h
}

// replyLine is an SMTP reply line; an enhanced status code, when present,
// is captured with the reply code.
var replyLine = regexp.MustCompile(`^([2-5])[0-9][0-9]([ -])(?:([245])\.[0-9]{1,3}\.[0-9]{1,3} )?`)

func (h *sessionHarness) run(t *testing.T, role Role, chunk int, script []byte) {
	hs := h.servers[role]
	before := len(hs.agent.all())
	hs.logs.reset()
	sc := scriptconn.New(script, chunk)
	if !hs.ln.Dial(sc) {
		t.Fatal("listener closed")
	}
	select {
	case <-sc.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("%v: connection still open 20s after its input ended: the server hangs\nscript %q", role, script)
	}
	out := sc.Output()
	defer func() {
		if t.Failed() {
			t.Logf("%v script %q\noutput %q", role, script, out)
		}
	}()
	if p := hs.logs.panicked(); p != "" {
		if goSMTPSessionGone(p) {
			t.Logf("go-smtp used its session after closing the connection (recovered): %.200s", p)
		} else {
			t.Fatalf("server panicked: %s", p)
		}
	}
	if !bytes.HasSuffix(out, []byte("\r\n")) && len(out) > 0 {
		t.Errorf("output does not end with CRLF")
	}
	authed := false
	for _, l := range strings.Split(strings.TrimSuffix(string(out), "\r\n"), "\r\n") {
		m := replyLine.FindStringSubmatch(l)
		switch {
		case m == nil:
			t.Errorf("malformed reply line %q", l)
		case m[3] != "" && m[3] != m[1]:
			t.Errorf("enhanced code of another class than the reply: %q", l)
		case strings.Contains(l, "Internal server error"):
			t.Errorf("internal error reply %q", l)
		}
		if strings.HasPrefix(l, "235 ") {
			authed = true
		}
	}
	for _, d := range hs.agent.all()[before:] {
		if f := receivedField(d.data); f == "" {
			t.Errorf("delivered message does not start with a well-formed Received field: %.200q", d.data)
		}
		switch role {
		case RoleSubmission:
			if !authed {
				t.Errorf("submission delivered without AUTH: %+v", d.env)
			}
		default:
			for _, r := range d.env.Recipients {
				if !strings.HasSuffix(r.Address, "@example.org") && !strings.HasSuffix(r.Address, "@example.net") {
					t.Errorf("%v relayed to %q without AUTH", role, r.Address)
				}
			}
		}
	}
}

// receivedField returns the Received field that starts a delivered
// message, or "" when the message does not start with one that is folded
// properly and free of control characters other than tab: whatever the
// client greeted with or sent, the header we add stays one field.
func receivedField(data string) string {
	if !strings.HasPrefix(data, "Received: from ") {
		return ""
	}
	end := 0
	for {
		i := strings.Index(data[end:], "\r\n")
		if i < 0 {
			return ""
		}
		end += i + 2
		if end == len(data) || data[end] != '\t' && data[end] != ' ' {
			break
		}
	}
	f := data[:end]
	for _, c := range []byte(strings.ReplaceAll(f, "\r\n", "")) {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return ""
		}
	}
	if !strings.Contains(f, ";\r\n\t") {
		return ""
	}
	return f
}

// goSMTPSessionGone recognises panics go-smtp (v0.25.1, and still v0.26.0)
// causes and recovers from itself, all from calling Conn.Session() after its
// own Conn.Close has set the session to nil: the command loop goes on with
// commands the client had pipelined behind QUIT or behind the line that
// reached its error limit (QUIT then MAIL is enough), and the goroutine
// handleBdat starts may run only after the client hung up (BDAT 0 then a
// hang-up). The connection is already closed, nothing is lost and the
// server goes on; the panic only costs a logged stack trace. It is a nil
// dereference with no frame of ours on the stack; the fuzz target logs it
// without failing, since it can only be fixed in the library.
func goSMTPSessionGone(p string) bool {
	return strings.Contains(p, "nil pointer dereference") && strings.Contains(p, "github.com/emersion/go-smtp.(*Conn).") &&
		!strings.Contains(p, "github.com/vmaild/vmaild/")
}

// panicTrap remembers go-smtp's report of a panic it recovered from.
type panicTrap struct {
	mu  sync.Mutex
	msg string
}

func (p *panicTrap) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicTrap) WithAttrs([]slog.Attr) slog.Handler       { return p }
func (p *panicTrap) WithGroup(string) slog.Handler            { return p }
func (p *panicTrap) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "go-smtp" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if s := a.Value.String(); a.Key == "msg" && strings.HasPrefix(s, "panic") {
			p.mu.Lock()
			p.msg = s
			p.mu.Unlock()
		}
		return true
	})
	return nil
}

func (p *panicTrap) reset() {
	p.mu.Lock()
	p.msg = ""
	p.mu.Unlock()
}

func (p *panicTrap) panicked() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.msg
}

// FuzzRemoveFields: cutting the fields a check names out of a hostile
// header keeps every other byte of it, in order, and finds the end of the
// header where the message's empty line is.
func FuzzRemoveFields(f *testing.F) {
	for _, seed := range []string{
		"Authentication-Results: mx.example.org; dkim=pass\r\nFrom: a@b\r\n\r\nbody\r\n",
		"X-Spam-Flag: NO\r\nX-Spam-Flag: YES\r\n folded\r\n\tmore\r\nSubject: x\r\n\r\n",
		"Subject: no body\r\n",
		"\r\nbody only\r\n",
		"Broken field without colon\r\nX-Spam-Flag: NO\r\n\r\n",
	} {
		f.Add([]byte(seed), "X-Spam-Flag", 1)
	}
	f.Fuzz(func(t *testing.T, msg []byte, name string, index int) {
		sp := newSpool(1<<20, 1<<20, os.TempDir()) // in memory: the limit is the message limit
		defer sp.Close()
		if _, err := sp.Write(msg); err != nil {
			return // not CRLF-clean: refused before any check runs
		}
		kept, end, ok := removeFields(sp, []inbound.HeaderRef{{Name: name, Index: index}})
		if !ok {
			t.Fatalf("a header under the limit was not rewritten")
		}
		if end < 0 || end > int64(len(msg)) || len(kept) > int(end) {
			t.Fatalf("end %d, kept %d of %d bytes", end, len(kept), len(msg))
		}
		if end < int64(len(msg)) && !bytes.HasPrefix(msg[end:], []byte("\r\n")) {
			t.Fatalf("the header ends at %d, not at an empty line: %q", end, msg[end:])
		}
		// What is kept is the header with whole fields taken out.
		if !isSubsequence(kept, msg[:end]) {
			t.Fatalf("kept %q is not taken from %q", kept, msg[:end])
		}
		none, end2, _ := removeFields(sp, nil)
		if end2 != end || !bytes.Equal(none, msg[:end]) {
			t.Fatalf("without refs: %q, want %q", none, msg[:end])
		}
	})
}

// isSubsequence reports whether a's bytes appear in b in order.
func isSubsequence(a, b []byte) bool {
	i := 0
	for _, c := range b {
		if i < len(a) && a[i] == c {
			i++
		}
	}
	return i == len(a)
}
