package imap

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
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

// TestUnauthenticateLog: after UNAUTHENTICATE the session's log lines no
// longer name the account that logged out; a failed login names only the
// user it tried.
func TestUnauthenticateLog(t *testing.T) {
	var log bytes.Buffer
	var mu sync.Mutex
	e := newEnv(t, func(s *Server) {
		s.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &log}, nil))
	})
	r := e.raw(t)
	r.login()
	r.send("A1 UNAUTHENTICATE\r\nA2 LOGIN mallory@example.org wrong\r\nA3 LOGOUT\r\n")
	r.until("A3 ")
	r.closed()
	mu.Lock()
	defer mu.Unlock()
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "imap login failed") && strings.Contains(l, testUser) {
			t.Fatalf("failed login after UNAUTHENTICATE logged with the old account: %s", l)
		}
	}
}
