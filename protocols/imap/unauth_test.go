package imap

import (
	"strings"
	"testing"
)

// TestUnauthenticate: UNAUTHENTICATE (RFC 8437), advertised once logged
// in, ends the login while selected: the mailbox is closed, commands that
// need a login are refused, and the client can log in again.
func TestUnauthenticate(t *testing.T) {
	e := newEnv(t)
	e.deliver(t, "INBOX", "Subject: a\r\n\r\nx\r\n")
	r := e.raw(t)
	r.login()
	for _, s := range []struct{ cmd, want string }{
		{"A1 ENABLE QRESYNC", "A1 OK"},
		{"A2 SELECT INBOX", "A2 OK"},
		{"A3 UNAUTHENTICATE", "A3 OK"},
		{"A4 FETCH 1 FLAGS", "A4 BAD"},
		{"A5 SELECT INBOX", "A5 BAD"},
		{"A6 LOGIN " + testUser + " " + testPass, "A6 OK"},
		{"A7 FETCH 1 FLAGS", "A7 BAD"},
		{"A8 SELECT INBOX", "A8 OK"},
	} {
		r.send(s.cmd + "\r\n")
		l := r.until(s.cmd[:3])
		if !strings.HasPrefix(l[len(l)-1], s.want) {
			t.Fatalf("%s: %q, want %s", s.cmd, l, s.want)
		}
		if s.cmd[:2] == "A8" && strings.Contains(strings.Join(l, "\n"), "HIGHESTMODSEQ") {
			t.Errorf("QRESYNC still enabled after UNAUTHENTICATE: %q", l)
		}
	}
}
