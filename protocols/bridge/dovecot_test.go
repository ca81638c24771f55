package bridge

import (
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/protocols/login/logintest"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// handshake reads the server's handshake up to DONE and sends the
// client's, as Postfix does.
func (c *client) handshake() []string {
	c.t.Helper()
	c.send("VERSION\t1\t1\nCPID\t4242\n")
	var lines []string
	for {
		l := c.line()
		lines = append(lines, l)
		if l == "DONE" {
			return lines
		}
	}
}

func TestDovecotHandshake(t *testing.T) {
	f := newFixture(t)
	c := dial(t, serve(t, &Dovecot{Answers: f.answers}, 0))
	lines := c.handshake()
	want := []string{"VERSION\t1\t2", "MECH\tPLAIN\tplaintext", "MECH\tLOGIN\tplaintext", "SPID\t", "CUID\t", "COOKIE\t", "DONE"}
	if len(lines) != len(want) {
		t.Fatalf("handshake %q, want lines like %q", lines, want)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("handshake line %d: %q, want %q…", i, lines[i], w)
		}
	}
}

func TestDovecotAuth(t *testing.T) {
	f := newFixture(t)
	path := serve(t, &Dovecot{Answers: f.answers}, 0)
	const params = "\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.7"
	for _, tc := range []struct {
		name string
		// steps alternate: a client line, then the server's answer.
		steps []string
	}{
		{"plain", []string{
			"AUTH\t1\tPLAIN" + params + "\tresp=" + b64("\x00alice@example.com\x00alice-secret"),
			"OK\t1\tuser=alice@example.com"}},
		{"plain case folded", []string{
			"AUTH\t7\tPLAIN" + params + "\tresp=" + b64("\x00Alice@Example.COM\x00alice-secret"),
			"OK\t7\tuser=alice@example.com"}},
		{"plain wrong password", []string{
			"AUTH\t2\tPLAIN" + params + "\tresp=" + b64("\x00alice@example.com\x00wrong"),
			"FAIL\t2\tuser=alice@example.com"}},
		{"plain unknown user", []string{
			"AUTH\t3\tPLAIN" + params + "\tresp=" + b64("\x00nobody@example.com\x00x"),
			"FAIL\t3\tuser=nobody@example.com"}},
		{"plain without initial response", []string{
			"AUTH\t4\tPLAIN" + params, "CONT\t4\t",
			"CONT\t4\t" + b64("\x00bob@example.com\x00bob-secret"), "OK\t4\tuser=bob@example.com"}},
		{"login", []string{
			"AUTH\t5\tLOGIN" + params, "CONT\t5\t" + b64("Username:"),
			"CONT\t5\t" + b64("bob@example.com"), "CONT\t5\t" + b64("Password:"),
			"CONT\t5\t" + b64("bob-secret"), "OK\t5\tuser=bob@example.com"}},
		{"login wrong password", []string{
			"AUTH\t6\tLOGIN" + params, "CONT\t6\t" + b64("Username:"),
			"CONT\t6\t" + b64("bob@example.com"), "CONT\t6\t" + b64("Password:"),
			"CONT\t6\t" + b64("nope"), "FAIL\t6\tuser=bob@example.com"}},
		{"plain with an authorization identity of another user", []string{
			"AUTH\t8\tPLAIN" + params + "\tresp=" + b64("bob@example.com\x00alice@example.com\x00alice-secret"),
			"FAIL\t8\treason=Invalid authentication response"}},
		{"unsupported mechanism", []string{
			"AUTH\t9\tCRAM-MD5" + params, "FAIL\t9\treason=Unsupported authentication mechanism"}},
		{"bad base64", []string{
			"AUTH\t10\tPLAIN" + params + "\tresp=!!!", "FAIL\t10\treason=Invalid base64 data in initial response"}},
		{"CONT of no request", []string{
			"CONT\t11\t" + b64("x"), "FAIL\t11\treason=Unknown authentication request"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, path)
			c.handshake()
			for i := 0; i < len(tc.steps); i += 2 {
				c.send(tc.steps[i] + "\n")
				if got := c.line(); got != tc.steps[i+1] {
					t.Fatalf("after %q: %q, want %q", tc.steps[i], got, tc.steps[i+1])
				}
			}
		})
	}
}

// TestDovecotTemp: with no room to verify (the login service saturated,
// as under a login burst) or the directory down, the answer is "try
// later": the connection closed before any answer (Postfix's 454 4.7.0),
// or with FailTemp a FAIL with the temp flag (for Exim).
func TestDovecotTemp(t *testing.T) {
	f := newFixture(t)
	f.answers.Logins = logintest.Saturated(t)
	req := "AUTH\t1\tPLAIN\tservice=smtp\trip=192.0.2.1\tresp=" + b64("\x00alice@example.com\x00alice-secret") + "\n"

	c := dial(t, serve(t, &Dovecot{Answers: f.answers, FailTemp: true}, 0))
	c.handshake()
	c.send(req)
	if got, want := c.line(), "FAIL\t1\tuser=alice@example.com\ttemp\treason=Temporary authentication failure, try again later"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}

	c = dial(t, serve(t, &Dovecot{Answers: f.answers}, 0))
	c.handshake()
	c.send(req)
	if rest, err := io.ReadAll(c.r); err != nil || len(rest) != 0 {
		t.Fatalf("answered %q (%v), want the connection closed", rest, err)
	}
}

func TestDovecotEscape(t *testing.T) {
	for _, s := range []string{"plain", "a\tb", "x\ny\rz", "\x00\x01\x01t", ""} {
		e := dovecotEscape(s)
		if strings.ContainsAny(e, "\t\n\r\x00") {
			t.Errorf("escape(%q) = %q keeps a separator", s, e)
		}
		if u := dovecotUnescape(e); u != s {
			t.Errorf("unescape(escape(%q)) = %q", s, u)
		}
	}
}
