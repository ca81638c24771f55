package bridge

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vmaild/vmaild/protocols/login"
)

// TestDirectoryDown: with the directory gone, lookups and the policy
// answer "try later", never "no". (Logins with slapd stopped answer "try
// later" too: TestPostfix.)
func TestDirectoryDown(t *testing.T) {
	f := newFixture(t)
	f.db.Close()
	ctx := context.Background()
	if r := f.answers.Lookup(ctx, Aliases, "sales@example.com"); r.Status != TempFail {
		t.Errorf("lookup: %v, want TEMP", r)
	}
	attrs := map[string]string{"request": "smtpd_access_policy", "protocol_state": "RCPT", "recipient": "alice@example.com"}
	if got, want := (&Policy{Answers: f.answers}).Action(ctx, attrs), "451 4.3.0 Directory temporarily unavailable, try again later"; got != want {
		t.Errorf("policy: %q, want %q", got, want)
	}
	if got, want := (&Policy{Answers: f.answers, DirectoryDown: "DEFER directory down"}).Action(ctx, attrs), "DEFER directory down"; got != want {
		t.Errorf("policy with directory_down_action: %q, want %q", got, want)
	}
	if _, err := f.answers.Authenticate(ctx, netip.Addr{}, "alice@example.com", "alice-secret"); err == nil {
		t.Error("authenticate succeeded with the directory closed")
	}
}

// TestDovecotThrottlesByRip: the login service counts failures against
// the client network Postfix passes as rip=, not against Postfix: one
// network's guessing delays that network only.
func TestDovecotThrottlesByRip(t *testing.T) {
	f := newFixture(t)
	logins, err := login.New(login.Config{
		DummyScheme: "SSHA", PenaltyFreeFailures: 2,
		Sleep: func(ctx context.Context, d time.Duration) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.answers.Logins = logins
	c := dial(t, serve(t, &Dovecot{Answers: f.answers}, 0))
	c.handshake()
	auth := func(id int, rip, user, pw string) string {
		c.send("AUTH\t" + itoa(id) + "\tPLAIN\tservice=smtp\trip=" + rip + "\tresp=" + b64("\x00"+user+"\x00"+pw) + "\n")
		return c.line()
	}
	for i := range 4 { // a guesser at 192.0.2.7 tries names
		auth(i+1, "192.0.2.7", "guess"+itoa(i)+"@example.com", "x")
	}
	before := logins.Stats().Penalties
	if got := auth(10, "198.51.100.1", "bob@example.com", "bob-secret"); got != "OK\t10\tuser=bob@example.com" {
		t.Fatalf("bob from another network: %q", got)
	}
	if p := logins.Stats().Penalties; p != before {
		t.Errorf("bob from another network was delayed (%d penalties, were %d)", p, before)
	}
	if got := auth(11, "192.0.2.7", "bob@example.com", "bob-secret"); got != "OK\t11\tuser=bob@example.com" {
		t.Fatalf("bob from the guessing network: %q", got)
	}
	if p := logins.Stats().Penalties; p != before+1 {
		t.Errorf("bob from the guessing network: %d penalties, want %d", p, before+1)
	}
}

// TestShutdown: Shutdown closes idle connections at once and lets a
// request in progress finish.
func TestShutdown(t *testing.T) {
	f := newFixture(t)
	ln := listenUnix(t)
	srv := &Server{Protocol: &Socketmap{Answers: f.answers}}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	idle := dial(t, ln.Addr().String())
	busy := dial(t, ln.Addr().String())
	busy.send(netstring("virtual_mailbox_domains example.com")) // answered: then idle too
	if got := busy.netstring(); got != "OK example.com" {
		t.Fatalf("answer %q", got)
	}
	// The server marks the first request done only after its answer is
	// out: wait for that, then for the next request to begin, else
	// Shutdown may find the connection idle (or ending the first
	// request) and close it.
	waitBusy(t, srv, false)
	busy.send("40:virtual_alias") // a request begun
	waitBusy(t, srv, true)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.Shutdown(ctx) }()
	if _, err := idle.r.ReadByte(); err == nil {
		t.Error("idle connection still open after Shutdown")
	}
	if err := <-errc; err != context.DeadlineExceeded {
		t.Errorf("Shutdown with a request never finished: %v, want the deadline", err)
	}
	if err := <-done; err != ErrServerClosed {
		t.Errorf("Serve: %v", err)
	}
}

// waitBusy returns once one of srv's connections is inside a request
// (want true), or once none is (want false).
func waitBusy(t *testing.T, srv *Server, want bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		srv.mu.Lock()
		busy := false
		for c := range srv.conns {
			c.mu.Lock()
			busy = busy || c.busy
			c.mu.Unlock()
		}
		srv.mu.Unlock()
		if busy == want {
			return
		}
	}
	t.Fatalf("no connection got busy=%v", want)
}
