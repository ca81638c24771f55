package imap

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/protocols/gate"
)

// A client that never logs in but keeps sending empty lines, each of them
// answered, is disconnected at the pre-auth lifetime; a logged-in client
// on the same server is not.
func TestPreAuthEmptyLines(t *testing.T) {
	const lifetime = time.Second
	e := newEnv(t, func(s *Server) { s.Gate = &gate.Gate{Limits: gate.Config{PreAuthLifetime: lifetime}} })
	user := e.raw(t)
	user.login()
	start := time.Now()
	r := e.raw(t)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			if _, err := r.c.Write([]byte("\r\n")); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	answered := 0
	var last string
	for time.Since(start) < 20*time.Second {
		last = r.line()
		if !strings.HasPrefix(last, "* BAD [CLIENTBUG] Empty command line") {
			break
		}
		answered++
	}
	took := time.Since(start)
	t.Logf("disconnected after %v (lifetime %v) and %d answered empty lines", took.Round(time.Millisecond), lifetime, answered)
	if !strings.HasPrefix(last, "* BYE Login time exceeded") {
		t.Fatalf("after %v and %d answered empty lines: %q", took, answered, last)
	}
	if took < lifetime/2 || took > lifetime+5*time.Second {
		t.Errorf("disconnected after %v, lifetime %v", took, lifetime)
	}
	// Empty lines are ignored, as Dovecot ignores them: the drip must
	// still end at the pre-auth lifetime, which answered lines or not.
	if !r.closed() {
		t.Error("open after BYE")
	}
	user.send("N1 NOOP\r\n")
	if l := user.until("N1 "); !strings.HasPrefix(l[len(l)-1], "N1 OK") {
		t.Errorf("logged-in client: %q", l)
	}
}

// Clients waiting to log in are capped; a login frees a place.
func TestUnauthenticatedCap(t *testing.T) {
	e := newEnv(t, func(s *Server) { s.Gate = &gate.Gate{Limits: gate.Config{MaxUnauthenticated: 1}} })
	first := e.raw(t)
	refused := dialNoGreeting(t, e.addr)
	if l := refused.line(); l != "* BYE [UNAVAILABLE] "+gate.LimitUnauthenticated.Text() {
		t.Errorf("refusal: %q", l)
	}
	first.login()
	// The place is free once the front has seen the login, before the
	// client's next command.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := dialNoGreeting(t, e.addr)
		if l := r.line(); strings.HasPrefix(l, "* OK") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("still refused after login: %q", l)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dialNoGreeting connects without reading the greeting (or refusal).
func dialNoGreeting(t *testing.T, addr string) *raw {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{t: t, c: c, br: newReader(c)}
}
