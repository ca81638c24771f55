package pop3

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/protocols/login/logintest"
)

const (
	msg1 = "From: a@example.org\r\nSubject: one\r\n\r\nHello\r\n"
	msg2 = "From: b@example.org\nSubject: two\n\nline 1\n.dot line\nline 3\n"
)

func insecureServer(t testing.TB, b *memBackend) string {
	return testServer(t, &Server{Backend: b, AllowInsecureAuth: true, MaxBadCommands: 100}, false)
}

// TestTransaction walks every TRANSACTION command and checks each answer.
func TestTransaction(t *testing.T) {
	b := newMemBackend()
	b.add("bob@example.org", "secret", msg1, msg2, "third\r\n")
	addr := insecureServer(t, b)
	c := dial(t, addr)

	s1, s2, s3 := int64(len(msg1)), int64(len(reference(msg2))), int64(len("third\r\n"))
	total := s1 + s2 + s3
	c.must("USER bob@example.org", "+OK")
	c.must("PASS secret", fmt.Sprintf("+OK maildrop has 3 messages (%d octets)", total))

	steps := []struct {
		cmd   string
		want  string   // exact status line
		multi []string // lines of a multi-line answer, unstuffed
	}{
		{"STAT", fmt.Sprintf("+OK 3 %d", total), nil},
		{"LIST", fmt.Sprintf("+OK 3 messages (%d octets)", total), []string{fmt.Sprintf("1 %d", s1), fmt.Sprintf("2 %d", s2), fmt.Sprintf("3 %d", s3)}},
		{"LIST 2", fmt.Sprintf("+OK 2 %d", s2), nil},
		{"list 4", "-ERR no such message, only 3 messages in maildrop", nil},
		{"LIST 0", "-ERR no such message, only 3 messages in maildrop", nil},
		{"LIST x", "-ERR invalid message number", nil},
		{"LIST -1", "-ERR invalid message number", nil},
		{"LIST +1", "-ERR invalid message number", nil},
		{"LIST 99999999999999999999", "-ERR no such message, only 3 messages in maildrop", nil},
		{"LIST 1 2", "-ERR usage: LIST [message-number]", nil},
		{"UIDL", "+OK unique-id listing follows", []string{"1 u1", "2 u2", "3 u3"}},
		{"UIDL 3", "+OK 3 u3", nil},
		{"NOOP", "+OK", nil},
		{"NOOP x", "-ERR this command takes no arguments", nil},
		{"DELE 2", "+OK message 2 deleted", nil},
		{"DELE 2", "-ERR message 2 already deleted", nil},
		{"LIST 2", "-ERR message 2 already deleted", nil},
		{"RETR 2", "-ERR message 2 already deleted", nil},
		{"TOP 2 0", "-ERR message 2 already deleted", nil},
		{"UIDL 2", "-ERR message 2 already deleted", nil},
		{"STAT", fmt.Sprintf("+OK 2 %d", s1+s3), nil},
		{"LIST", fmt.Sprintf("+OK 2 messages (%d octets)", s1+s3), []string{fmt.Sprintf("1 %d", s1), fmt.Sprintf("3 %d", s3)}},
		{"UIDL", "+OK unique-id listing follows", []string{"1 u1", "3 u3"}},
		{"RSET", fmt.Sprintf("+OK maildrop has 3 messages (%d octets)", total), nil},
		{"LIST 2", fmt.Sprintf("+OK 2 %d", s2), nil},
		{"RETR 1", fmt.Sprintf("+OK %d octets", s1), []string{"From: a@example.org", "Subject: one", "", "Hello"}},
		{"RETR", "-ERR usage: RETR message-number", nil},
		{"TOP 2 1", "+OK top of message follows", []string{"From: b@example.org", "Subject: two", "", "line 1"}},
		{"TOP 2 0", "+OK top of message follows", []string{"From: b@example.org", "Subject: two", ""}},
		{"TOP 2", "-ERR usage: TOP message-number lines", nil},
		{"TOP 2 x", "-ERR invalid number of lines", nil},
		{"USER bob", "-ERR already logged in", nil},
		{"PASS x", "-ERR already logged in", nil},
		{"AUTH PLAIN", "-ERR already logged in", nil},
		{"CAPA", "+OK capability list follows", []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "IMPLEMENTATION vmaild"}},
		{"DELE 1", "+OK message 1 deleted", nil},
		{"DELE 3", "+OK message 3 deleted", nil},
		{"QUIT x", "-ERR this command takes no arguments", nil},
	}
	for _, st := range steps {
		got := c.cmd("%s", st.cmd)
		if got != st.want {
			t.Fatalf("%s: got %q, want %q", st.cmd, got, st.want)
		}
		if st.multi != nil {
			if ls := c.lines(); !slices.Equal(ls, st.multi) {
				t.Fatalf("%s: lines %q, want %q", st.cmd, ls, st.multi)
			}
		}
	}
	if got := b.uids("bob@example.org"); len(got) != 3 {
		t.Fatalf("deleted before QUIT: %v", got)
	}
	c.must("QUIT", "+OK pop.example.org POP3 server signing off (1 messages left)")
	c.expectClosed()
	if got := b.uids("bob@example.org"); !slices.Equal(got, []string{"u2"}) {
		t.Fatalf("after QUIT: %v", got)
	}
	waitFor(t, func() bool { return b.closeCount() == 1 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}

func TestAuthorizationState(t *testing.T) {
	b := newMemBackend()
	b.add("bob@example.org", "pass word with spaces ", msg1)
	addr := insecureServer(t, b)
	c := dial(t, addr)
	steps := []struct{ cmd, want string }{
		{"STAT", "-ERR STAT is only valid after login"},
		{"RETR 1", "-ERR RETR is only valid after login"},
		{"NOOP", "-ERR NOOP is only valid after login"},
		{"PASS secret", "-ERR USER first"},
		{"USER", "-ERR usage: USER name"},
		{"APOP bob 0123456789abcdef0123456789abcdef", "-ERR unknown command"},
		{"STLS", "-ERR STLS not available"},
		{"USER bob@example.org", "+OK send PASS"},
		{"PASS wrong", "-ERR [AUTH] authentication failed"},
		{"USER bob@example.org", "+OK send PASS"},
		{"NOOP", "-ERR NOOP is only valid after login"},
		{"PASS pass word with spaces ", "-ERR USER first"},
		{"USER nobody@example.org", "+OK send PASS"},
		{"PASS x", "-ERR [AUTH] authentication failed"},
		{"USER bob@example.org", "+OK send PASS"},
		{"PASS", "-ERR usage: PASS password"},
		{"USER bob@example.org", "+OK send PASS"},
		{"PASS pass word with spaces ", "+OK maildrop has 1 messages"},
	}
	for _, st := range steps {
		if got := c.cmd("%s", st.cmd); !strings.HasPrefix(got, st.want) {
			t.Fatalf("%s: got %q, want %q", st.cmd, got, st.want)
		}
	}
}

func TestQuitBeforeLogin(t *testing.T) {
	addr := insecureServer(t, newMemBackend())
	c := dial(t, addr)
	c.must("quit", "+OK pop.example.org POP3 server signing off")
	c.expectClosed()
}

// TestDropWithoutQuit: a connection that ends without QUIT deletes nothing
// and releases the lock.
func TestDropWithoutQuit(t *testing.T) {
	b := newMemBackend()
	b.add("bob", "pw", msg1, msg2)
	addr := insecureServer(t, b)
	c := dial(t, addr)
	c.login("bob", "pw")
	c.must("DELE 1", "+OK")
	c.must("DELE 2", "+OK")
	c.conn.Close()
	waitFor(t, func() bool { return b.closeCount() == 1 })
	if got := b.uids("bob"); len(got) != 2 {
		t.Fatalf("messages deleted without QUIT: %v", got)
	}
	c2 := dial(t, addr)
	c2.login("bob", "pw")
}

func TestInUse(t *testing.T) {
	b := newMemBackend()
	b.add("Bob@Example.org", "pw", msg1)
	b.add("bob@example.org", "pw", msg1) // the same maildrop, another spelling
	addr := insecureServer(t, b)
	c1 := dial(t, addr)
	c1.login("bob@example.org", "pw")
	c2 := dial(t, addr)
	c2.must("USER Bob@Example.org", "+OK")
	c2.must("PASS pw", "-ERR [IN-USE] maildrop is locked by another session")
	// The failed session stays in AUTHORIZATION and may try again.
	c1.must("QUIT", "+OK")
	c1.expectClosed()
	waitFor(t, func() bool { return b.closeCount() == 2 })
	c2.must("USER bob@example.org", "+OK")
	c2.must("PASS pw", "+OK maildrop has 1 messages")
}

// TestSharedLocks: two listeners (110 and 995) sharing Locks exclude each
// other.
func TestSharedLocks(t *testing.T) {
	b := newMemBackend()
	b.add("bob", "pw", msg1)
	locks := new(Locks)
	a1 := testServer(t, &Server{Backend: b, AllowInsecureAuth: true, Locks: locks}, false)
	a2 := testServer(t, &Server{Backend: b, AllowInsecureAuth: true, Locks: locks}, false)
	dial(t, a1).login("bob", "pw")
	c := dial(t, a2)
	c.must("USER bob", "+OK")
	c.must("PASS pw", "-ERR [IN-USE]")
}

func TestRetrExact(t *testing.T) {
	long := strings.Repeat("x", 100*1024)
	bodies := []struct{ name, body string }{
		{"8-bit UTF-8", "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n\r\nGrüße, ☃ und 日本語\r\n\xff\xfe raw 8-bit\r\n"},
		{"leading dots", ".\r\n..\r\n.x\r\nSubject: dots\r\n\r\n.\r\n. \r\n..double\r\nend\r\n"},
		{"no trailing newline", "Subject: x\r\n\r\nlast line without newline"},
		{"no trailing newline, dot", "Subject: x\r\n\r\n."},
		{"bare LF", "Subject: lf\n\nline\n.dot\n\nend\n"},
		{"mixed endings", "A: 1\r\nB: 2\n\r\nbody\nmore\r\n"},
		{"empty", ""},
		{"only newline", "\n"},
		{"long line", "Subject: long\r\n\r\n" + long + "\r\n." + long + "\n"},
	}
	b := newMemBackend()
	var all []string
	for _, m := range bodies {
		all = append(all, m.body)
	}
	b.add("bob", "pw", all...)
	addr := insecureServer(t, b)
	c := dial(t, addr)
	c.login("bob", "pw")
	for i, m := range bodies {
		t.Run(m.name, func(t *testing.T) {
			c.t = t
			norm := reference(m.body)
			c.must(fmt.Sprintf("LIST %d", i+1), fmt.Sprintf("+OK %d %d", i+1, len(norm)))
			c.must(fmt.Sprintf("RETR %d", i+1), fmt.Sprintf("+OK %d octets", len(norm)))
			if got := string(c.raw()); got != stuffed(norm) {
				t.Fatalf("RETR wire bytes\n got %q\nwant %q", trunc(got), trunc(stuffed(norm)))
			}
			// textproto undoes the stuffing: the client sees the message.
			c.must(fmt.Sprintf("RETR %d", i+1), "+OK")
			got, err := c.tp.ReadDotBytes()
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.ReplaceAll(norm, "\r\n", "\n"); string(got) != want {
				t.Fatalf("unstuffed: got %q want %q", trunc(string(got)), trunc(want))
			}
			// TOP n sends the header, the blank line and n body lines.
			lines := strings.SplitAfter(norm, "\r\n")
			if lines[len(lines)-1] == "" {
				lines = lines[:len(lines)-1]
			}
			header := slices.Index(lines, "\r\n") // -1: no body
			for _, n := range []int{0, 1, 2, 1000} {
				want := strings.Join(lines, "")
				if header >= 0 && header+1+n < len(lines) {
					want = strings.Join(lines[:header+1+n], "")
				}
				c.must(fmt.Sprintf("TOP %d %d", i+1, n), "+OK")
				if got := string(c.raw()); got != stuffed(want) {
					t.Fatalf("TOP %d: got %q want %q", n, trunc(got), trunc(stuffed(want)))
				}
			}
		})
	}
}

func trunc(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// TestTransferEdgeCases covers the normaliser on pieces a reference cannot
// state simply: bare CR, and CR LF split across read buffers.
func TestTransferEdgeCases(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\rb\r\n", "a\rb\r\n"},
		{"a\r", "a\r\r\n"},
		{"\r\r\n", "\r\r\n"},
		{strings.Repeat("y", 32*1024-1) + "\r\n.z", strings.Repeat("y", 32*1024-1) + "\r\n..z\r\n"},
		{strings.Repeat("y", 32*1024-1) + "\r\r\n", strings.Repeat("y", 32*1024-1) + "\r\r\n"},
		{strings.Repeat("y", 32*1024) + ".\n", strings.Repeat("y", 32*1024) + ".\r\n"},
	}
	for _, tt := range tests {
		var sb strings.Builder
		n, err := transfer(&sb, strings.NewReader(tt.in), true, -1)
		if err != nil {
			t.Fatal(err)
		}
		if sb.String() != tt.want {
			t.Errorf("transfer(%q) = %q, want %q", trunc(tt.in), trunc(sb.String()), trunc(tt.want))
		}
		size, _ := Size(strings.NewReader(tt.in))
		if size != n {
			t.Errorf("Size %d, transfer %d", size, n)
		}
	}
}

func TestWireUID(t *testing.T) {
	if got := wireUID("1700000000.M1P2.host,S=12:2,S"); got != "1700000000.M1P2.host,S=12:2,S" {
		t.Fatal(got)
	}
	for _, bad := range []string{"", "has space", strings.Repeat("a", 71), "ü"} {
		got := wireUID(bad)
		if len(got) > 70 || got != wireUID(bad) || strings.ContainsAny(got, " ") {
			t.Fatalf("wireUID(%q) = %q", bad, got)
		}
	}
}

func TestPlaintextNeedsTLS(t *testing.T) {
	serverTLS, clientTLS, _ := testCert(t)
	b := newMemBackend()
	b.add("bob", "pw", msg1)
	addr := testServer(t, &Server{Backend: b, TLSConfig: serverTLS}, false)
	c := dial(t, addr)
	c.must("CAPA", "+OK")
	if caps := c.lines(); slices.Contains(caps, "USER") || slices.Contains(caps, "SASL PLAIN LOGIN") || !slices.Contains(caps, "STLS") {
		t.Fatalf("CAPA before STLS: %q", caps)
	}
	c.must("USER bob", "-ERR [AUTH] plaintext authentication is not allowed without TLS")
	c.must("PASS pw", "-ERR [AUTH] plaintext authentication is not allowed without TLS")
	c.must("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00bob\x00pw")), "-ERR [AUTH] plaintext")
	c.must("STLS x", "-ERR this command takes no arguments")
	c.must("STLS", "+OK begin TLS negotiation")
	tc := tls.Client(c.conn, clientTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if v := tc.ConnectionState().Version; v < tls.VersionTLS12 {
		t.Fatalf("TLS version %x", v)
	}
	c.tp = textproto.NewConn(tc)
	c.must("CAPA", "+OK")
	if caps := c.lines(); !slices.Contains(caps, "USER") || !slices.Contains(caps, "SASL PLAIN LOGIN") || slices.Contains(caps, "STLS") {
		t.Fatalf("CAPA after STLS: %q", caps)
	}
	c.must("STLS", "-ERR command not permitted when TLS active")
	c.login("bob", "pw")
	c.must("RETR 1", "+OK")
	c.raw()
	c.must("QUIT", "+OK")
}

func TestTLS11Refused(t *testing.T) {
	serverTLS, clientTLS, _ := testCert(t)
	b := newMemBackend()
	addr := testServer(t, &Server{Backend: b, TLSConfig: serverTLS}, true)
	clientTLS.MaxVersion = tls.VersionTLS11
	if nc, err := tls.Dial("tcp", addr, clientTLS); err == nil {
		nc.Close()
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

// TestSTLSInjection: commands pipelined behind STLS in plaintext must not
// be executed as if they came over TLS.
func TestSTLSInjection(t *testing.T) {
	serverTLS, _, _ := testCert(t)
	b := newMemBackend()
	b.add("bob", "pw", msg1)
	addr := testServer(t, &Server{Backend: b, TLSConfig: serverTLS}, false)
	c := dial(t, addr)
	fmt.Fprintf(c.conn, "STLS\r\nUSER bob\r\nPASS pw\r\n")
	c.expect("+OK begin TLS negotiation")
	c.expectClosed()
}

func TestImplicitTLS(t *testing.T) {
	serverTLS, clientTLS, _ := testCert(t)
	b := newMemBackend()
	b.add("bob", "pw", msg1)
	addr := testServer(t, &Server{Backend: b, TLSConfig: serverTLS}, true)
	c := dialTLS(t, addr, clientTLS)
	c.must("CAPA", "+OK")
	if caps := c.lines(); slices.Contains(caps, "STLS") || !slices.Contains(caps, "USER") {
		t.Fatalf("CAPA on 995: %q", caps)
	}
	c.login("bob", "pw")
	c.must("QUIT", "+OK")
}

func TestAuth(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	type step struct{ send, want string }
	tests := []struct {
		name  string
		steps []step
	}{
		{"PLAIN with initial response", []step{{"AUTH PLAIN " + b64("\x00bob\x00pw"), "+OK maildrop has 1 messages"}}},
		{"plain, lower case", []step{{"auth plain " + b64("\x00bob\x00pw"), "+OK maildrop has"}}},
		{"PLAIN after empty challenge", []step{{"AUTH PLAIN", "+ "}, {b64("bob\x00bob\x00pw"), "+OK maildrop has"}}},
		{"PLAIN wrong password", []step{{"AUTH PLAIN " + b64("\x00bob\x00nope"), "-ERR [AUTH] authentication failed"}}},
		{"PLAIN other authzid", []step{{"AUTH PLAIN " + b64("alice\x00bob\x00pw"), "-ERR [AUTH] malformed SASL response: authorization identity"}}},
		{"PLAIN missing NULs", []step{{"AUTH PLAIN " + b64("bob pw"), "-ERR [AUTH] malformed SASL response: PLAIN needs authzid NUL authcid NUL passwd, got 0 NULs"}}},
		{"PLAIN empty initial response", []step{{"AUTH PLAIN =", "-ERR [AUTH] malformed SASL response"}}},
		{"PLAIN bad base64 initial response", []step{{"AUTH PLAIN !!!", "-ERR invalid base64 in initial response"}}},
		{"PLAIN unpadded base64", []step{{"AUTH PLAIN AGJvYgBwdw", "-ERR invalid base64 in initial response"}}},
		{"PLAIN bad base64 response", []step{{"AUTH PLAIN", "+ "}, {"%%%", "-ERR invalid base64 in AUTH response"}}},
		{"PLAIN cancelled", []step{{"AUTH PLAIN", "+ "}, {"*", "-ERR authentication cancelled"}}},
		{"PLAIN 10 KB response", []step{{"AUTH PLAIN", "+ "}, {b64("\x00bob\x00" + strings.Repeat("p", 7000)), "-ERR [AUTH] malformed SASL response: field longer than"}}},
		{"PLAIN overlong response line", []step{{"AUTH PLAIN", "+ "}, {strings.Repeat("A", 13000), "-ERR line too long"}}},
		{"LOGIN", []step{{"AUTH LOGIN", "+ " + b64("Username:")}, {b64("bob"), "+ " + b64("Password:")}, {b64("pw"), "+OK maildrop has"}}},
		{"LOGIN initial response", []step{{"AUTH LOGIN " + b64("bob"), "+ " + b64("Password:")}, {b64("pw"), "+OK maildrop has"}}},
		{"LOGIN cancelled", []step{{"AUTH LOGIN", "+ " + b64("Username:")}, {"*", "-ERR authentication cancelled"}}},
		{"unknown mechanism", []step{{"AUTH CRAM-MD5", "-ERR unsupported SASL mechanism"}}},
		{"too many arguments", []step{{"AUTH PLAIN a b", "-ERR usage: AUTH mechanism [initial-response]"}}},
	}
	b := newMemBackend()
	b.add("bob", "pw", msg1)
	addr := insecureServer(t, b)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr)
			for _, st := range tt.steps {
				c.must(st.send, st.want)
			}
			// Whatever happened, the session is usable.
			c.must("CAPA", "+OK")
			c.lines()
			c.must("QUIT", "+OK")
			c.expectClosed()
		})
	}
	c := dial(t, addr)
	c.must("AUTH", "+OK")
	if m := c.lines(); !slices.Equal(m, []string{"PLAIN", "LOGIN"}) {
		t.Fatalf("AUTH list: %q", m)
	}
}

func TestDirectoryUnavailable(t *testing.T) {
	b := newMemBackend()
	b.add("bob", "pw", msg1)
	b.down = true
	// Outages are not the client's fault: a delay after them fails the test.
	l, err := login.New(login.Config{DummyScheme: "SSHA", PenaltyFreeFailures: -1,
		Sleep: func(_ context.Context, d time.Duration) error { t.Errorf("delayed %v after outages", d); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	addr := testServer(t, &Server{Backend: b, AllowInsecureAuth: true, Logins: l}, false)
	c := dial(t, addr)
	for range 3 {
		c.must("USER bob", "+OK")
		c.must("PASS pw", "-ERR [SYS/TEMP] user directory unavailable, try again later")
	}
	c.must("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00bob\x00pw")), "-ERR [SYS/TEMP] user directory unavailable")
	b.mu.Lock()
	b.down = false
	b.mu.Unlock()
	c.login("bob", "pw")
}

// TestNoLockout: failures slow an account down, never lock it.
func TestNoLockout(t *testing.T) {
	b := newMemBackend()
	b.add("bob", "pw", msg1)
	l, err := login.New(login.Config{DummyScheme: "SSHA", PenaltyBase: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	addr := testServer(t, &Server{Backend: b, AllowInsecureAuth: true, Logins: l, MaxBadCommands: 100}, false)
	c := dial(t, addr)
	for range 10 {
		c.must("USER bob", "+OK")
		c.must("PASS bad", "-ERR [AUTH] authentication failed")
	}
	c.must("USER bob", "+OK")
	c.must("PASS pw", "+OK")
	if st := l.Stats(); st.Failed != 10 || st.OK != 1 || st.Penalties == 0 {
		t.Fatalf("login service saw %+v", st)
	}
}

// TestLoginBusy: no room to verify a password is -ERR [SYS/TEMP], for
// USER/PASS and AUTH alike, and the session lives on.
func TestLoginBusy(t *testing.T) {
	b := newMemBackend()
	b.add("bob", "pw", msg1)
	addr := testServer(t, &Server{Backend: b, AllowInsecureAuth: true, Logins: logintest.Saturated(t)}, false)
	c := dial(t, addr)
	c.must("USER bob", "+OK")
	c.must("PASS bad", "-ERR [SYS/TEMP] too many logins at once, try again later")
	c.must("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00nobody\x00bad")), "-ERR [SYS/TEMP] ")
	c.must("NOOP", "-ERR")
	c.must("QUIT", "+OK")
}

// TestClientDropCancelsLogin: a backend call in progress sees its context
// cancelled when the client disconnects.
func TestClientDropCancelsLogin(t *testing.T) {
	b := newMemBackend()
	b.add("bob", "pw", msg1)
	b.block = make(chan struct{})
	b.loginCtx = make(chan context.Context, 1)
	addr := insecureServer(t, b)
	c := dial(t, addr)
	c.must("USER bob", "+OK")
	fmt.Fprintf(c.conn, "PASS pw\r\n")
	ctx := <-b.loginCtx
	c.conn.Close()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("login context not cancelled after the client left")
	}
}

// TestPipelining: commands sent in one write are answered in order.
func TestPipelining(t *testing.T) {
	b := newMemBackend()
	b.add("bob", "pw", msg1, msg2)
	addr := insecureServer(t, b)
	c := dial(t, addr)
	fmt.Fprintf(c.conn, "USER bob\r\nPASS pw\r\nSTAT\r\nRETR 1\r\nDELE 1\r\nNOOP\r\nQUIT\r\n")
	for _, want := range []string{"+OK send PASS", "+OK maildrop has 2 messages", "+OK 2 ", fmt.Sprintf("+OK %d octets", len(msg1))} {
		if got := c.line(); !strings.HasPrefix(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if got := string(c.raw()); got != msg1 {
		t.Fatalf("RETR: %q", got)
	}
	for _, want := range []string{"+OK message 1 deleted", "+OK", "+OK pop.example.org POP3 server signing off (1 messages left)"} {
		if got := c.line(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

func TestTooManyBadCommands(t *testing.T) {
	addr := testServer(t, &Server{Backend: newMemBackend(), MaxBadCommands: 3}, false)
	c := dial(t, addr)
	c.must("FOO", "-ERR unknown command")
	c.must("BAR", "-ERR unknown command")
	c.must("BAZ", "-ERR too many bad commands, closing connection")
	c.expectClosed()
}

func TestMaxConnsPerNetwork(t *testing.T) {
	addr := testServer(t, &Server{Backend: newMemBackend(), Gate: &gate.Gate{Limits: gate.Config{MaxPerNetwork: 2}}}, false)
	dial(t, addr)
	dial(t, addr)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tp := textproto.NewConn(nc)
	if l, _ := tp.ReadLine(); l != "-ERR [SYS/TEMP] "+gate.LimitNetwork.Text() {
		t.Fatalf("got %q", l)
	}
}

func TestIdleTimeout(t *testing.T) {
	b := newMemBackend()
	b.add("bob", "pw", msg1)
	addr := testServer(t, &Server{Backend: b, AllowInsecureAuth: true, Timeouts: Timeouts{Idle: 200 * time.Millisecond}}, false)
	c := dial(t, addr)
	c.login("bob", "pw")
	c.must("DELE 1", "+OK")
	c.expect("-ERR idle timeout, closing connection")
	c.expectClosed()
	waitFor(t, func() bool { return b.closeCount() == 1 })
	if len(b.uids("bob")) != 1 {
		t.Fatal("autologout applied deletions")
	}
}

// Shutdown ends a session waiting for a command at once, without UPDATE,
// and waits for a command in progress, after which that session ends too.
func TestShutdown(t *testing.T) {
	b := newMemBackend()
	b.add("bob", "pw", msg1)
	b.add("alice", "pw", msg1)
	s := &Server{Backend: b, AllowInsecureAuth: true}
	addr := testServer(t, s, false)
	idle := dial(t, addr)
	idle.login("bob", "pw")
	idle.must("DELE 1", "+OK")
	busy := dial(t, addr)
	b.block = make(chan struct{})
	b.loginCtx = make(chan context.Context, 1)
	busy.must("USER alice", "+OK")
	fmt.Fprintf(busy.conn, "PASS pw\r\n")
	<-b.loginCtx

	errc := make(chan error, 1)
	go func() { errc <- s.Shutdown(context.Background()) }()
	idle.expect("-ERR [SYS/TEMP] " + gate.Shutdown.Text())
	idle.expectClosed()
	select {
	case err := <-errc:
		t.Fatalf("Shutdown returned %v with a login in progress", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(b.block)
	if l := busy.line(); !strings.HasPrefix(l, "+OK maildrop has") {
		t.Fatalf("login in progress during Shutdown: %q", l)
	}
	busy.expect("-ERR [SYS/TEMP] " + gate.Shutdown.Text())
	busy.expectClosed()
	if err := <-errc; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if len(b.uids("bob")) != 1 {
		t.Fatal("an interrupted session's deletion was applied")
	}
	if n := b.closeCount(); n != 2 {
		t.Fatalf("%d maildrops closed", n)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

// When Shutdown's context ends first, the sessions are closed and their
// backend calls cancelled.
func TestShutdownDeadline(t *testing.T) {
	b := newMemBackend()
	b.add("alice", "pw", msg1)
	b.block = make(chan struct{})
	b.loginCtx = make(chan context.Context, 1)
	s := &Server{Backend: b, AllowInsecureAuth: true}
	addr := testServer(t, s, false)
	c := dial(t, addr)
	c.must("USER alice", "+OK")
	fmt.Fprintf(c.conn, "PASS pw\r\n")
	loginCtx := <-b.loginCtx
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	if loginCtx.Err() == nil {
		t.Error("login context not cancelled")
	}
	c.expectClosed()
}
