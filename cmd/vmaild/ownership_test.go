package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

// TestServeOwnership drives `vmaild serve` over real sockets through the
// real queue and store: once a message is answered 250, every destination
// either has exactly one copy or is retried (or bounced) on its own.
func TestServeOwnership(t *testing.T) {
	for name, backend := range e2eBackends {
		t.Run(name, func(t *testing.T) { testOwnership(t, name, backend) })
	}
}

// ownershipDaemon starts vmaild with fast retries and the users of the
// ownership tests.
func ownershipDaemon(t *testing.T, name string, backend func(testing.TB) string) (*e2eDaemon, string) {
	dns := queuetest.NewDNS(t)
	data := filepath.Join(t.TempDir(), "data")
	extra := backend(t) + fmt.Sprintf("data_dir: %s\nqueue:\n  resolver: %s\n  retry_min: 500ms\n  retry_max: 500ms\n", data, dns.Addr)
	d := newDaemon(t, extra)
	if name != "embedded" {
		d.cli("", "db", "migrate")
	}
	d.start()
	d.cli("", "domain", "add", "example.com")
	// The directory's base entries (and alice and bob) come from the
	// example LDIF, as an admin would load them.
	if out := d.cli("", "ldif", "import", "--add-domains", "../../ldif/example.ldif"); !strings.Contains(out, "0 failed") {
		t.Fatalf("ldif import: %s", out)
	}
	for _, u := range []string{"sender", "carol"} {
		d.cli("secret\n", "user", "add", u+"@example.com", "--password-stdin")
	}
	return d, data
}

// mailboxFiles lists the messages in an account's INBOX on disk.
func mailboxFiles(t *testing.T, data, local string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"new", "cur"} {
		ents, _ := os.ReadDir(filepath.Join(data, "mail", "example.com", local, "Maildir", sub))
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(data, "mail", "example.com", local, "Maildir", sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(b))
		}
	}
	return out
}

// queued counts the messages in the spool.
func queued(t *testing.T, data string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(data, "queue", "*.msg"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, d *e2eDaemon, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, d.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testOwnership(t *testing.T, name string, backend func(testing.TB) string) {
	d, data := ownershipDaemon(t, name, backend)

	// (a) alice and a bob whose quota the message does not fit, in one
	// DATA: 250, alice has one copy, the sender gets a bounce naming bob.
	d.cli("", "quota", "set", "bob@example.com", "1000")
	big := "From: sender@example.com\r\nTo: alice@example.com, bob@example.com\r\nSubject: big\r\n\r\n" +
		strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 40)
	if err := sendMail(t, d.addr("smtp"), nil, "sender@example.com", []string{"alice@example.com", "bob@example.com"}, big); err != nil {
		t.Fatalf("alice + full bob: %v", err)
	}
	waitFor(t, d, "the bounce to the sender", func() bool { return len(mailboxFiles(t, data, "sender")) > 0 })
	waitFor(t, d, "an empty queue", func() bool { return queued(t, data) == 0 })
	if n := len(mailboxFiles(t, data, "alice")); n != 1 {
		t.Errorf("alice has %d copies, want 1", n)
	}
	if n := len(mailboxFiles(t, data, "bob")); n != 0 {
		t.Errorf("bob has %d copies, want 0", n)
	}
	dsn := mailboxFiles(t, data, "sender")
	if len(dsn) != 1 || !strings.Contains(dsn[0], "Final-Recipient: rfc822; bob@example.com") ||
		!strings.Contains(dsn[0], "Action: failed") || !strings.Contains(dsn[0], "Status: 5.2.2") {
		t.Errorf("bounce to the sender: %q", dsn)
	}

	// (b) an alias to alice and carol; carol's store fails three times
	// (her maildir's place is taken by a file), then recovers. alice gets
	// the message once, carol once, after the retries.
	d.cli("", "alias", "add", "team@example.com", "alice@example.com", "carol@example.com")
	blocker := filepath.Join(data, "mail", "example.com", "carol")
	if err := os.MkdirAll(filepath.Dir(blocker), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	msg := "From: sender@example.com\r\nTo: team@example.com\r\nSubject: team\r\n\r\nHello team\r\n"
	if err := sendMail(t, d.addr("smtp"), nil, "sender@example.com", []string{"team@example.com"}, msg); err != nil {
		t.Fatalf("to the alias: %v", err)
	}
	failures := func() int {
		n := 0
		for _, l := range strings.Split(d.out.String(), "\n") {
			if strings.Contains(l, "local delivery failed") && strings.Contains(l, "carol@example.com") {
				n++
			}
		}
		return n
	}
	waitFor(t, d, "three failures for carol", func() bool { return failures() >= 3 })
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	waitFor(t, d, "carol's copy", func() bool { return len(mailboxFiles(t, data, "carol")) > 0 })
	waitFor(t, d, "an empty queue", func() bool { return queued(t, data) == 0 })
	if n := len(mailboxFiles(t, data, "alice")); n != 2 {
		t.Errorf("alice has %d copies, want 2 (one from each test)", n)
	}
	if n := len(mailboxFiles(t, data, "carol")); n != 1 {
		t.Errorf("carol has %d copies, want 1", n)
	}
	if n := len(mailboxFiles(t, data, "sender")); n != 1 {
		t.Errorf("the sender has %d messages, want only the first bounce", n)
	}
	t.Logf("carol failed %d times before her copy was written", failures())

	// (c) dave is an account and also an alias to himself and archive
	// ("keep a copy"); crew reaches dave (so archive) and carol. dave's
	// store fails a few times: his retries go to his mailbox alone, so
	// archive has one copy, not one more per retry.
	for _, u := range []string{"dave", "archive"} {
		d.cli("secret\n", "user", "add", u+"@example.com", "--password-stdin")
	}
	d.cli("", "alias", "add", "dave@example.com", "dave@example.com", "archive@example.com")
	d.cli("", "alias", "add", "crew@example.com", "dave@example.com", "carol@example.com")
	daveBlocker := filepath.Join(data, "mail", "example.com", "dave")
	if err := os.WriteFile(daveBlocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	before := strings.Count(d.out.String(), "local delivery failed")
	crew := "From: sender@example.com\r\nTo: crew@example.com\r\nSubject: crew\r\n\r\nHello crew\r\n"
	if err := sendMail(t, d.addr("smtp"), nil, "sender@example.com", []string{"crew@example.com"}, crew); err != nil {
		t.Fatalf("to crew: %v", err)
	}
	waitFor(t, d, "three failures for dave", func() bool { return strings.Count(d.out.String(), "local delivery failed") >= before+3 })
	if err := os.Remove(daveBlocker); err != nil {
		t.Fatal(err)
	}
	waitFor(t, d, "dave's copy", func() bool { return len(mailboxFiles(t, data, "dave")) > 0 })
	waitFor(t, d, "an empty queue", func() bool { return queued(t, data) == 0 })
	for local, want := range map[string]int{"dave": 1, "archive": 1, "carol": 2, "alice": 2, "sender": 1} {
		if n := len(mailboxFiles(t, data, local)); n != want {
			t.Errorf("%s has %d messages, want %d", local, n, want)
		}
	}
	d.stop()
}
