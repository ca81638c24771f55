package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/sieve"
	"github.com/vmaild/vmaild/backend/sievestore"
	"github.com/vmaild/vmaild/backend/store"
)

// userScript stores src as addr's active script, the way ManageSieve and
// vmaild sieve put do.
func (f *fixture) userScript(t *testing.T, addr, src string) {
	t.Helper()
	maildir, err := f.store.MaildirPath(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	s := sievestore.Scripts{Home: sievestore.HomeOf(maildir)}
	if err := s.Put("main", []byte(src), sieve.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate("main"); err != nil {
		t.Fatal(err)
	}
}

// TestSieveFilter delivers through the Sieve filter: several folders with
// flags and :create, discard, redirect, reject, a broken script (kept in
// INBOX), the envelope recipient with its detail, and vacation handed to
// the sender hook.
func TestSieveFilter(t *testing.T) {
	f := newFixture(t, delivery.Config{})
	ctx := context.Background()
	var vacations []string
	f.agent.Filters = []delivery.Filter{&delivery.Sieve{
		Maildir:            f.store.MaildirPath,
		RecipientDelimiter: "+",
		Vacation: func(_ context.Context, m *delivery.Mail, p *sieve.VacationParams) (*delivery.Reply, error) {
			vacations = append(vacations, m.Destination.Address+": "+p.Reason)
			return nil, nil
		},
	}}
	f.userScript(t, "alice@example.com", `require ["fileinto", "imap4flags", "mailbox", "envelope", "subaddress", "vacation"];
if envelope :detail :is "to" "lists" { fileinto :create "Lists"; stop; }
if header :contains "subject" "hi" {
  fileinto :create :flags ["\\Seen", "(not-a-keyword"] "Greetings";
  fileinto :create "Archive/2026";
  keep :flags "\\Flagged";
}
vacation "Alice is away";`)
	f.userScript(t, "bob@example.com", `require ["reject"]; reject "Bob takes no mail";`)
	f.userScript(t, "carol@example.com", `redirect "carol@remote.test";`)
	f.userScript(t, "tiny@example.com", "keep;")
	// Changed behind our back into something that does not compile.
	tinyDir, _ := f.store.MaildirPath("tiny@example.com", "")
	os.WriteFile(filepath.Join(filepath.Dir(tinyDir), "sieve", "main.sieve"), []byte("this does not compile;\n"), 0o600)

	deliver := func(rcpt string) delivery.Outcome {
		env := delivery.Envelope{From: "s@remote.test", Recipients: rcpts(rcpt)}
		return f.agent.Deliver(ctx, env, newMsg(body))[0]
	}
	if got := deliver("alice@example.com"); got != delivered {
		t.Errorf("alice: %v", got)
	}
	for folder, want := range map[string]int{"": 1, "Greetings": 1, "Archive.2026": 1} {
		if n := f.folderCount(t, "alice@example.com", folder); n != want {
			t.Errorf("alice's %q has %d messages, want %d", folder, n, want)
		}
	}
	mb, err := f.store.OpenMailbox(ctx, store.Account{Address: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	for folder, want := range map[string]string{"INBOX": `\Flagged`, "Greetings": `\Seen`, "Archive/2026": ""} {
		fo, err := mb.Select(ctx, folder, true)
		if err != nil {
			t.Fatal(err)
		}
		if msgs := fo.Messages(); len(msgs) != 1 || strings.Join(fo.FlagNames(msgs[0].Flags), " ") != want {
			t.Errorf("%s: %d messages, flags %q, want %q", folder, len(msgs), fo.FlagNames(msgs[0].Flags), want)
		}
		fo.Close()
	}
	if len(vacations) != 1 || vacations[0] != "alice@example.com: Alice is away" {
		t.Errorf("vacation hook saw %q", vacations)
	}
	if got := deliver("alice+lists@example.com"); got != delivered || f.folderCount(t, "alice@example.com", "Lists") != 1 {
		t.Errorf("alice+lists: %v, Lists has %d", got, f.folderCount(t, "alice@example.com", "Lists"))
	}
	want := delivery.Outcome{Kind: delivery.Permanent, Cause: delivery.Rejected, Text: "Bob takes no mail"}
	if got := deliver("bob@example.com"); got != want || len(f.inbox(t, "bob@example.com")) != 0 {
		t.Errorf("bob: %v, want %v", got, want)
	}
	if got := deliver("carol@example.com"); got != delivered || f.folderCount(t, "carol@example.com", "") != 0 {
		t.Errorf("carol: %v, %d copies kept", got, f.folderCount(t, "carol@example.com", ""))
	}
	if p := f.pending(t); len(p) != 1 || p[0] != "carol@remote.test" {
		t.Errorf("queued redirects %q", p)
	}
	if got := deliver("tiny@example.com"); got != delivered || len(f.inbox(t, "tiny@example.com")) != 1 {
		t.Errorf("tiny (broken script): %v", got)
	}
}

// TestSieveFilterNoScript: without an active script nothing changes, and
// a dangling .dovecot.sieve link is no script.
func TestSieveFilterNoScript(t *testing.T) {
	f := newFixture(t, delivery.Config{})
	f.agent.Filters = []delivery.Filter{&delivery.Sieve{Maildir: f.store.MaildirPath}}
	maildir, _ := f.store.MaildirPath("bob@example.com", "")
	os.MkdirAll(filepath.Dir(maildir), 0o755)
	os.Symlink("sieve/gone.sieve", filepath.Join(filepath.Dir(maildir), ".dovecot.sieve"))
	env := delivery.Envelope{From: "s@remote.test", Recipients: rcpts("alice@example.com", "bob@example.com")}
	for i, got := range f.agent.Deliver(context.Background(), env, newMsg(body)) {
		if got != delivered {
			t.Errorf("recipient %d: %v", i, got)
		}
	}
	if len(f.inbox(t, "alice@example.com")) != 1 || len(f.inbox(t, "bob@example.com")) != 1 {
		t.Error("a message without a script did not reach INBOX")
	}
}

// TestSieveFilterAdminScripts: the administrator's before scripts (a
// directory per domain through %d) file spam into Junk for everyone and
// end the sequence there; other mail goes on to the user's script, then
// the after script.
func TestSieveFilterAdminScripts(t *testing.T) {
	f := newFixture(t, delivery.Config{})
	admin := t.TempDir()
	os.MkdirAll(filepath.Join(admin, "example.com"), 0o755)
	os.WriteFile(filepath.Join(admin, "example.com", "10-spam.sieve"), []byte(`require ["fileinto", "mailbox"];
if header :is "x-spam-flag" "YES" { fileinto :create "Junk"; }`), 0o644)
	os.WriteFile(filepath.Join(admin, "after.sieve"), []byte(`require "imap4flags"; addflag "$Filtered";`), 0o644)
	f.agent.Filters = []delivery.Filter{&delivery.Sieve{
		Maildir: f.store.MaildirPath,
		Before:  []string{filepath.Join(admin, "%d"), filepath.Join(admin, "missing.sieve")},
		After:   []string{filepath.Join(admin, "after.sieve")},
	}}
	f.userScript(t, "alice@example.com", `require ["fileinto", "copy", "mailbox"]; if header :contains "subject" "hi" { fileinto :copy :create "Hi"; }`)
	ctx := context.Background()
	spam := "X-Spam-Flag: YES\r\n" + body
	for _, m := range []string{spam, body} {
		for _, rcpt := range []string{"alice@example.com", "bob@example.com"} {
			env := delivery.Envelope{From: "s@remote.test", Recipients: rcpts(rcpt)}
			if got := f.agent.Deliver(ctx, env, newMsg(m))[0]; got != delivered {
				t.Fatalf("%s: %v", rcpt, got)
			}
		}
	}
	for _, tc := range []struct {
		addr, folder string
		n            int
	}{
		{"alice@example.com", "Junk", 1}, {"bob@example.com", "Junk", 1},
		{"alice@example.com", "Hi", 1}, {"alice@example.com", "", 1}, {"bob@example.com", "", 1},
	} {
		if n := f.folderCount(t, tc.addr, tc.folder); n != tc.n {
			t.Errorf("%s %q: %d messages, want %d", tc.addr, tc.folder, n, tc.n)
		}
	}
	// The after script ran for the kept mail only: INBOX copies carry
	// its flag, Junk's do not.
	mb, _ := f.store.OpenMailbox(ctx, store.Account{Address: "bob@example.com"})
	for folder, want := range map[string]string{"INBOX": "$Filtered", "Junk": ""} {
		fo, err := mb.Select(ctx, folder, true)
		if err != nil {
			t.Fatal(err)
		}
		if msgs := fo.Messages(); len(msgs) != 1 || strings.Join(fo.FlagNames(msgs[0].Flags), " ") != want {
			t.Errorf("bob's %s: flags %q, want %q", folder, fo.FlagNames(fo.Messages()[0].Flags), want)
		}
		fo.Close()
	}
}

// TestSieveMissingFolder: fileinto a folder that does not exist (no
// :create) files into INBOX, as Dovecot does, and beside a keep that is
// still one copy.
func TestSieveMissingFolder(t *testing.T) {
	f := newFixture(t, delivery.Config{})
	f.agent.Filters = []delivery.Filter{&delivery.Sieve{Maildir: f.store.MaildirPath}}
	f.userScript(t, "alice@example.com", `require "fileinto"; fileinto "Nowhere"; keep;`)
	f.userScript(t, "bob@example.com", `require "fileinto"; fileinto "Nowhere";`)
	env := delivery.Envelope{From: "s@remote.test", Recipients: rcpts("alice@example.com", "bob@example.com")}
	for i, got := range f.agent.Deliver(context.Background(), env, newMsg(body)) {
		if got != delivered {
			t.Errorf("recipient %d: %v", i, got)
		}
	}
	for _, a := range []string{"alice@example.com", "bob@example.com"} {
		if n := f.folderCount(t, a, ""); n != 1 {
			t.Errorf("%s: %d copies in INBOX, want 1", a, n)
		}
	}
}

// BenchmarkDeliverSieve: deliveries per second into one mailbox with no
// script and with a 50-rule script that files nothing (every rule tested).
func BenchmarkDeliverSieve(b *testing.B) {
	var rules strings.Builder
	rules.WriteString("require [\"fileinto\", \"imap4flags\", \"body\"];\n")
	for i := range 50 {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&rules, "if header :contains \"list-id\" \"list%d.example.org\" { fileinto \"Lists\"; stop; }\n", i)
		case 1:
			fmt.Fprintf(&rules, "if address :is :domain \"from\" \"sender%d.example\" { fileinto \"Senders\"; }\n", i)
		case 2:
			fmt.Fprintf(&rules, "if header :matches \"subject\" \"*[ticket-%d]*\" { addflag \"t%d\"; }\n", i, i)
		case 3:
			fmt.Fprintf(&rules, "if body :text :contains \"unsubscribe-%d\" { fileinto \"News\"; }\n", i)
		}
	}
	for _, tc := range []struct{ name, script string }{{"none", ""}, {"50-rules", rules.String()}} {
		b.Run(tc.name, func(b *testing.B) {
			f := newFixture(b, delivery.Config{})
			f.agent.Filters = []delivery.Filter{&delivery.Sieve{Maildir: f.store.MaildirPath}}
			if tc.script != "" {
				maildir, _ := f.store.MaildirPath("alice@example.com", "")
				s := sievestore.Scripts{Home: sievestore.HomeOf(maildir)}
				if err := s.Put("rules", []byte(tc.script), sieve.Options{}); err != nil {
					b.Fatal(err)
				}
				s.Activate("rules")
			}
			env := delivery.Envelope{From: "s@remote.test", Recipients: rcpts("alice@example.com")}
			b.ResetTimer()
			for b.Loop() {
				if got := f.agent.Deliver(context.Background(), env, newMsg(body))[0]; got != delivered {
					b.Fatal(got)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// TestSieveRedirectLoop: alice redirects to bob and bob back to alice.
// The copy alice redirects names her in Delivered-To; bob's redirect back
// to her is then a loop: not queued, and the message kept in bob's INBOX
// although his script discarded the implicit keep.
func TestSieveRedirectLoop(t *testing.T) {
	f := newFixture(t, delivery.Config{})
	ctx := context.Background()
	f.agent.Filters = []delivery.Filter{&delivery.Sieve{Maildir: f.store.MaildirPath}}
	f.userScript(t, "alice@example.com", `redirect "bob@example.com";`)
	f.userScript(t, "bob@example.com", `redirect "Alice@Example.com";`)
	env := delivery.Envelope{From: "s@remote.test", Recipients: rcpts("alice@example.com")}
	if got := f.agent.Deliver(ctx, env, newMsg(body))[0]; got != delivered {
		t.Fatalf("alice: %v", got)
	}
	items, err := f.queue.List(ctx)
	if err != nil || len(items) != 1 || len(items[0].Recipients) != 1 || items[0].Recipients[0].Addr != "bob@example.com" {
		t.Fatalf("queued: %+v, %v", items, err)
	}
	rc, err := f.queue.Message(ctx, items[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	redirected, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.HasPrefix(string(redirected), "Delivered-To: alice@example.com\r\n") {
		t.Fatalf("redirected copy:\n%s", redirected)
	}
	f.queue.Delete(ctx, items[0].ID)
	// The queue hands it to bob as the agent would.
	env = delivery.Envelope{From: items[0].From, Recipients: rcpts("bob@example.com")}
	if got := f.agent.Deliver(ctx, env, newMsg(string(redirected)))[0]; got != delivered {
		t.Fatalf("bob: %v", got)
	}
	if p := f.pending(t); len(p) != 0 {
		t.Errorf("the loop went on: queued %q", p)
	}
	if n := len(f.inbox(t, "bob@example.com")); n != 1 {
		t.Errorf("bob's INBOX has %d messages, want the one not redirected", n)
	}
	if n := len(f.inbox(t, "alice@example.com")); n != 0 {
		t.Errorf("alice's INBOX has %d messages", n)
	}
}

// failingQueue is a queue whose spool cannot take a message (disk full).
type failingQueue struct{ delivery.Queue }

func (failingQueue) EnqueueReaderAt(context.Context, string, []string, io.ReaderAt, int64) (string, error) {
	return "", errors.New("spool full")
}

// TestSieveRedirectQueueFails: a script that only redirects leaves
// nothing in the mailbox, so when the redirect cannot be queued the
// recipient must get a temporary failure, not "delivered": that would
// answer 250 and lose the message.
func TestSieveRedirectQueueFails(t *testing.T) {
	f := newFixture(t, delivery.Config{})
	f.agent.Queue = failingQueue{f.queue}
	f.agent.Filters = []delivery.Filter{&delivery.Sieve{Maildir: f.store.MaildirPath}}
	f.userScript(t, "carol@example.com", `redirect "carol@remote.test";`)
	got := f.agent.Deliver(context.Background(), delivery.Envelope{Recipients: rcpts("carol@example.com")}, newMsg(body))
	if len(got) != 1 || got[0].Kind != delivery.Temporary {
		t.Fatalf("outcomes %v, want one temporary failure", got)
	}
}
