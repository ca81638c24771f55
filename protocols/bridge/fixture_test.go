package bridge

import (
	"bufio"
	"context"
	"net"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/internal/testusers"
	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/userdb"
	sqldir "github.com/vmaild/vmaild/userdb/sql"
)

// The directory every test of the package answers from: a real SQLite
// directory as `vmaild serve` opens it.
var fixturePasswords = map[string]string{
	"alice@example.com": "alice-secret",
	"bob@example.com":   "bob-secret",
	"full@example.com":  "full-secret",
}

type fixture struct {
	db      *sqldir.DB
	users   *userdb.Users
	answers *Answers
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	db := testusers.SQLite(t)
	for _, d := range []userdb.Domain{
		{Name: "example.com", Active: true},
		{Name: "alias.example", Active: true, AliasFor: "example.com"},
		{Name: "catch.example", Active: true, CatchAll: "bob@example.com"},
	} {
		if err := db.AddDomain(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	testusers.AddAccounts(t, db, "SSHA", fixturePasswords)
	if err := db.SetAccountQuota(ctx, "full@example.com", &userdb.Limit{Bytes: 1000}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetUsage(ctx, "full@example.com", userdb.Usage{Bytes: 5000, Messages: 3}); err != nil {
		t.Fatal(err)
	}
	for _, a := range [][2]string{
		{"sales@example.com", "alice@example.com"},
		{"sales@example.com", "bob@example.com"},
		{"loop-a@example.com", "loop-b@example.com"},
		{"loop-b@example.com", "loop-a@example.com"},
	} {
		if err := db.AddAlias(ctx, a[0], a[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.AddSender(ctx, "sales@example.com", "bob@example.com"); err != nil {
		t.Fatal(err)
	}
	users := &userdb.Users{Accounts: db, Domains: db, Quotas: db, Senders: db, RecipientDelimiter: "+"}
	logins, err := login.New(login.Config{DummyScheme: "SSHA", PenaltyFreeFailures: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{db: db, users: users, answers: &Answers{
		Directory: users,
		Agent:     &delivery.LocalAgent{Directory: users, Quotas: db},
		Logins:    logins,
	}}
}

// serve runs p on a unix socket in a temporary folder and returns its
// path; the server is closed when the test ends.
func serve(t testing.TB, p Protocol, timeout time.Duration) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Protocol: p, Timeout: timeout}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

// client is a test's end of a bridge connection.
type client struct {
	t testing.TB
	net.Conn
	r *bufio.Reader
}

func dial(t testing.TB, path string) *client {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: t, Conn: c, r: bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return l[:len(l)-1]
}

// goroutines waits for the goroutine count to come back to at most n,
// and fails the test if it does not within a while.
func checkGoroutines(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d, want at most %d\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func listenUnix(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
