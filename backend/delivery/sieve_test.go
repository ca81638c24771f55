package delivery_test

import (
	"context"
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
  fileinto :create :flags "\\Seen" "Greetings";
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
