package smtp_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gosasl "github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/queue"
	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/smtp"
	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/password"
	sqldir "github.com/vmaild/vmaild/userdb/sql"
)

// stack is the real path behind the front end: a SQLite directory, the
// delivery agent, the Maildir store and the queue's spool (its workers are
// not started, so relayed mail stays there to be looked at).
type stack struct {
	db    *sqldir.DB
	users *userdb.Users
	agent *delivery.LocalAgent
	store *store.Store
	queue *queue.Queue
}

func newStack(t *testing.T) *stack {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqldir.Open(ctx, sqldir.Config{Driver: "sqlite", DSN: filepath.Join(dir, "vmaild.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	hash, err := password.Hash("SHA512-CRYPT", "correct horse")
	must(err)
	must(db.AddDomain(ctx, userdb.Domain{Name: "example.com", Active: true}))
	for _, a := range []string{"alice", "bob"} {
		must(db.AddAccount(ctx, userdb.Account{Address: a + "@example.com", Active: true}, hash))
	}
	must(db.AddAccount(ctx, userdb.Account{Address: "tiny@example.com", Active: true, Quota: &userdb.Limit{Bytes: 100}}, hash))
	must(db.AddAlias(ctx, "team@example.com", "alice@example.com"))
	must(db.AddAlias(ctx, "team@example.com", "bob@example.com"))
	// Receiving team@ gives neither the right to send as it; alice has it
	// because the sender map says so.
	must(db.AddSender(ctx, "team@example.com", "alice@example.com"))
	q, err := queue.New(queue.Config{Dir: filepath.Join(dir, "queue"), Hostname: "mx.example.com"})
	must(err)
	st := &store.Store{Root: filepath.Join(dir, "mail")}
	users := &userdb.Users{Accounts: db, Domains: db, Quotas: db, Senders: db, RecipientDelimiter: "+"}
	agent := &delivery.LocalAgent{Directory: users, Quotas: db, Store: st, Queue: q}
	return &stack{db: db, users: users, agent: agent, store: st, queue: q}
}

func (s *stack) serve(t *testing.T, role smtp.Role, network string, tlsConf *tls.Config) string {
	t.Helper()
	srv := &smtp.Server{
		Role: role, Hostname: "mx.example.com", Directory: s.users, Agent: s.agent,
		TLSConfig: tlsConf, AllowInsecureAuth: tlsConf == nil, SpoolDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	addr := "127.0.0.1:0"
	if network == "unix" {
		d, err := os.MkdirTemp("", "lmtp")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		addr = filepath.Join(d, "s")
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return l.Addr().String()
}

func (s *stack) inbox(t *testing.T, addr string) []string {
	t.Helper()
	p, err := s.store.MaildirPath(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(p, "new"))
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(p, "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

func TestEndToEndMTAToMaildir(t *testing.T) {
	s := newStack(t)
	addr := s.serve(t, smtp.RoleMTA, "tcp", nil)
	msg := "From: someone@remote.test\r\nTo: team@example.com\r\nSubject: e2e\r\n\r\nhello\r\n"
	c, err := gosmtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("someone@remote.test", []string{"team@example.com", "Alice@Example.com"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	alice, bob := s.inbox(t, "alice@example.com"), s.inbox(t, "bob@example.com")
	if len(alice) != 1 || len(bob) != 1 {
		t.Fatalf("alice has %d copies, bob %d", len(alice), len(bob))
	}
	if !strings.Contains(alice[0], "Received: from localhost ([127.0.0.1])\r\n\tby mx.example.com (vmaild) with ESMTP id ") ||
		!strings.HasSuffix(alice[0], msg) {
		t.Errorf("stored copy:\n%s", alice[0])
	}
	err = c.SendMail("someone@remote.test", []string{"nobody@example.com"}, strings.NewReader(msg))
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 {
		t.Errorf("unknown user: %v", err)
	}
	c.Reset()
	err = c.SendMail("someone@remote.test", []string{"friend@remote.test"}, strings.NewReader(msg))
	if !errors.As(err, &se) || se.Code != 554 {
		t.Errorf("relay: %v", err)
	}
}

func TestEndToEndSubmissionToQueue(t *testing.T) {
	s := newStack(t)
	addr := s.serve(t, smtp.RoleSubmission, "tcp", nil)
	c, err := gosmtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(gosasl.NewPlainClient("", "alice@example.com", "wrong")); err == nil {
		t.Fatal("wrong password accepted")
	}
	if err := c.Auth(gosasl.NewPlainClient("", "alice@example.com", "correct horse")); err != nil {
		t.Fatal(err)
	}
	msg := "From: team@example.com\r\nTo: friend@remote.test\r\nSubject: out\r\n\r\nhi\r\n"
	if err := c.SendMail("team@example.com", []string{"friend@remote.test", "bob@example.com"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	err = c.SendMail("bob@example.com", []string{"friend@remote.test"}, strings.NewReader(msg))
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) || se.Code != 553 {
		t.Errorf("sending as bob: %v", err)
	}
	items, err := s.queue.List(context.Background())
	if err != nil || len(items) != 1 || len(items[0].Recipients) != 1 || items[0].Recipients[0].Addr != "friend@remote.test" {
		t.Fatalf("queue: %+v, %v", items, err)
	}
	bob := s.inbox(t, "bob@example.com")
	if len(bob) != 1 || !strings.Contains(bob[0], "with ESMTPA id") || !strings.Contains(bob[0], "\r\nMessage-ID: <") || !strings.Contains(bob[0], "\r\nDate: ") {
		t.Errorf("bob's copy:\n%v", bob)
	}
}

func TestEndToEndLMTP(t *testing.T) {
	s := newStack(t)
	path := s.serve(t, smtp.RoleLMTP, "unix", nil)
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	read := func(want string) {
		t.Helper()
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, want) {
			t.Fatalf("got %q (%v), want %q", line, err, want)
		}
	}
	send := func(s string) { fmt.Fprint(conn, s) }
	read("220 ")
	send("LHLO postfix.example.com\r\n")
	for {
		line, _ := r.ReadString('\n')
		if strings.HasPrefix(line, "250 ") {
			break
		}
	}
	send("MAIL FROM:<someone@remote.test>\r\n")
	read("250 ")
	for _, rc := range []string{"alice@example.com", "tiny@example.com"} {
		send("RCPT TO:<" + rc + ">\r\n")
		read("250 ")
	}
	send("RCPT TO:<nobody@example.com>\r\n")
	read("550 5.1.1")
	send("DATA\r\n")
	read("354 ")
	send("Subject: lmtp\r\n\r\n" + strings.Repeat("too big for tiny\r\n", 20) + ".\r\n")
	read("250 2.0.0 <alice@example.com>")
	read("552 5.2.2 <tiny@example.com>")
	if n := len(s.inbox(t, "alice@example.com")); n != 1 {
		t.Errorf("alice has %d messages", n)
	}
	// The directory goes away: the next recipient is deferred, not refused.
	s.db.Close()
	send("MAIL FROM:<someone@remote.test>\r\n")
	read("250 ")
	send("RCPT TO:<bob@example.com>\r\n")
	read("451 4.3.0")
}
