package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/queue"
	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/userdb"
)

// flaky is a store whose writes to some mailboxes fail temporarily a
// number of times, then succeed.
type flaky struct {
	delivery.Mailstore
	mu    sync.Mutex
	fails map[string]int // mailbox → failures still to give
}

func (s *flaky) Deliver(ctx context.Context, rc store.Recipient, r io.Reader) (store.Delivery, error) {
	s.mu.Lock()
	fail := s.fails[rc.Address] > 0
	if fail {
		s.fails[rc.Address]--
	}
	s.mu.Unlock()
	if fail {
		return store.Delivery{}, fmt.Errorf("write: %w: %w", store.ErrTemporary, syscall.EIO)
	}
	return s.Mailstore.Deliver(ctx, rc, r)
}

func (s *flaky) DeliverGroups(ctx context.Context, groups []store.Group) [][]store.Delivery {
	return deliverEach(ctx, s.Deliver, groups)
}

func (s *flaky) left() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.fails {
		n += c
	}
	return n
}

// outcomeError is an outcome as the queue's local hook reports it:
// temporary or not.
type outcomeError struct{ o delivery.Outcome }

func (e outcomeError) Error() string   { return e.o.String() }
func (e outcomeError) Temporary() bool { return e.o.Kind == delivery.Temporary }

// restartQueue replaces the fixture's queue with one on the same spool
// that runs, retries quickly and delivers example.com through Redeliver
// with the recipients' final marks, as cmd/vmaild wires it.
func (f *fixture) restartQueue(t testing.TB) *queue.Queue {
	t.Helper()
	if err := f.queue.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	q, err := queue.New(queue.Config{
		Dir: f.queueDir, Hostname: "mx.example.com",
		Retry:       []time.Duration{10 * time.Millisecond},
		LocalDomain: func(d string) bool { return d == "example.com" },
		Local: func(ctx context.Context, from string, rcpts []queue.Recipient, msg []byte) error {
			rs := make([]delivery.Recipient, len(rcpts))
			for i, r := range rcpts {
				rs[i] = delivery.Recipient{Address: r.Addr, Final: r.Final}
			}
			errs := queue.RecipientErrors{}
			for i, o := range f.agent.Redeliver(ctx, queue.ItemID(ctx), from, rs, msg) {
				errs[rcpts[i].Addr] = nil
				if o.Failed() {
					errs[rcpts[i].Addr] = outcomeError{o}
				}
			}
			return errs
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.agent.Queue, f.queue = q, q
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Shutdown(context.Background()) })
	return q
}

func waitEmpty(t testing.TB, q *queue.Queue) {
	t.Helper()
	for limit := time.Now().Add(30 * time.Second); q.Len() > 0; {
		if time.Now().After(limit) {
			items, _ := q.List(context.Background())
			t.Fatalf("queue not empty: %+v", items)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRetryFinalMailbox: alice@ is an account and also an alias to alice@
// and archive@ ("keep a copy"); crew@ reaches alice (so archive) and
// carol. Whichever mailbox of the fan-out fails for a while, its retries
// through the real queue deliver to that mailbox alone: every mailbox ends
// with exactly one copy, also when the aliases change before the retry,
// and a destination reached with +tag keeps its folder.
func TestRetryFinalMailbox(t *testing.T) {
	for _, tt := range []struct {
		name  string
		rcpt  string
		fails string // mailbox failing 3 times
		// between runs after the first attempt, before the retries.
		between func(ctx context.Context, f *fixture) error
		folder  string // where alice's, archive's and carol's copy is
	}{
		{name: "carol fails", rcpt: "crew@example.com", fails: "carol@example.com"},
		{name: "alice fails", rcpt: "crew@example.com", fails: "alice@example.com"},
		{name: "alice fails, direct", rcpt: "alice@example.com", fails: "alice@example.com"},
		{name: "archive fails", rcpt: "alice@example.com", fails: "archive@example.com"},
		{name: "aliases change", rcpt: "crew@example.com", fails: "carol@example.com",
			between: func(ctx context.Context, f *fixture) error {
				// carol becomes an alias too: her retry still
				// goes to her mailbox alone.
				if err := f.db.AddAlias(ctx, "carol@example.com", "carol@example.com"); err != nil {
					return err
				}
				return f.db.AddAlias(ctx, "carol@example.com", "archive@example.com")
			}},
		{name: "alice fails, tag", rcpt: "crew+news@example.com", fails: "alice@example.com", folder: "news"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, delivery.Config{DetailFolders: true})
			ctx := context.Background()
			for _, a := range []string{"archive@example.com"} {
				if err := f.db.AddAccount(ctx, userdb.Account{Address: a, Active: true}, "{PLAIN}x"); err != nil {
					t.Fatal(err)
				}
			}
			for _, al := range [][2]string{
				{"alice@example.com", "alice@example.com"}, {"alice@example.com", "archive@example.com"},
				{"crew@example.com", "alice@example.com"}, {"crew@example.com", "carol@example.com"},
			} {
				if err := f.db.AddAlias(ctx, al[0], al[1]); err != nil {
					t.Fatal(err)
				}
			}
			mailboxes := []string{"alice@example.com", "archive@example.com", "carol@example.com"}
			for _, a := range mailboxes {
				mb, err := f.store.OpenMailbox(ctx, store.Account{Address: a})
				if err != nil {
					t.Fatal(err)
				}
				if err := mb.CreateFolder(ctx, "news"); err != nil {
					t.Fatal(err)
				}
			}
			fl := &flaky{Mailstore: f.agent.Store, fails: map[string]int{tt.fails: 3}}
			f.agent.Store = fl

			// The first attempt, with the queue stopped: the failed
			// mailbox is queued, the others have their copy.
			env := delivery.Envelope{From: "s@remote.test", OneReply: true, Recipients: rcpts(tt.rcpt)}
			if got := f.agent.Deliver(ctx, env, newMsg(body)); got[0] != queued {
				t.Fatalf("first attempt: %v, want queued", got[0])
			}
			if p := f.pending(t); !slices.Equal(p, []string{f.users.DetailAddress(tt.fails, tt.folder)}) {
				t.Fatalf("queued for retry: %v", p)
			}
			if tt.between != nil {
				if err := tt.between(ctx, f); err != nil {
					t.Fatal(err)
				}
			}
			// Moved to a running queue, as after a restart.
			q := f.restartQueue(t)
			waitEmpty(t, q)
			if n := fl.left(); n != 0 {
				t.Errorf("%d failures not used: the retries stopped early", n)
			}
			wants := map[string]int{}
			for _, a := range mailboxes {
				wants[a] = 1
			}
			if tt.rcpt == "alice@example.com" {
				wants["carol@example.com"] = 0
			}
			for _, a := range mailboxes {
				if n := f.folderCount(t, a, tt.folder); n != wants[a] {
					t.Errorf("%s has %d copies in %q, want %d", a, n, tt.folder, wants[a])
				}
				if tt.folder != "" {
					if n := f.folderCount(t, a, ""); n != 0 {
						t.Errorf("%s has %d copies in INBOX, want 0", a, n)
					}
				}
			}
		})
	}
}

// outageDirectory is the fixture's directory with its mailbox lookups
// failing while down is set, as a directory outage would.
type outageDirectory struct {
	*userdb.Users
	mu   sync.Mutex
	down bool
}

func (d *outageDirectory) Mailbox(ctx context.Context, address string) (userdb.Destination, error) {
	d.mu.Lock()
	down := d.down
	d.mu.Unlock()
	if down {
		return userdb.Destination{}, userdb.Unavailable("test", errors.New("directory down"))
	}
	return d.Users.Mailbox(ctx, address)
}

func (d *outageDirectory) set(down bool) {
	d.mu.Lock()
	d.down = down
	d.mu.Unlock()
}

// TestRetryFinalMailboxGone: the retry of a final mailbox while the
// directory is down stays queued (a temporary failure) and delivers once
// the directory is back; when the account was deleted meanwhile the
// sender gets a bounce naming it.
func TestRetryFinalMailboxGone(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (*fixture, *outageDirectory) {
		f := newFixture(t, delivery.Config{})
		if err := f.db.AddAlias(ctx, "crew@example.com", "alice@example.com"); err != nil {
			t.Fatal(err)
		}
		if err := f.db.AddAlias(ctx, "crew@example.com", "carol@example.com"); err != nil {
			t.Fatal(err)
		}
		dd := &outageDirectory{Users: f.users}
		f.agent.Directory = dd
		f.agent.Store = &flaky{Mailstore: f.agent.Store, fails: map[string]int{"carol@example.com": 1}}
		env := delivery.Envelope{From: "bob@example.com", OneReply: true, Recipients: rcpts("crew@example.com")}
		if got := f.agent.Deliver(ctx, env, newMsg(body)); got[0] != queued {
			t.Fatalf("first attempt: %v, want queued", got[0])
		}
		return f, dd
	}

	t.Run("directory down", func(t *testing.T) {
		f, dd := setup(t)
		dd.set(true)
		q := f.restartQueue(t)
		var carol queue.Recipient
		for limit := time.Now().Add(30 * time.Second); carol.Attempts < 3; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(limit) {
				t.Fatalf("carol's retries: %+v", carol)
			}
			items, _ := q.List(ctx)
			for _, it := range items {
				for _, r := range it.Recipients {
					if r.Addr == "carol@example.com" {
						carol = r
					}
				}
			}
		}
		if carol.State != queue.Pending || !carol.Final || !strings.HasPrefix(carol.Status, "4.") {
			t.Fatalf("carol while the directory is down: %+v", carol)
		}
		dd.set(false)
		waitEmpty(t, q)
		for _, a := range []string{"alice@example.com", "carol@example.com"} {
			if n := f.folderCount(t, a, ""); n != 1 {
				t.Errorf("%s has %d copies, want 1", a, n)
			}
		}
		if n := f.folderCount(t, "bob@example.com", ""); n != 0 {
			t.Errorf("the sender got %d messages, want none", n)
		}
	})

	t.Run("account deleted", func(t *testing.T) {
		f, _ := setup(t)
		if err := f.db.DeleteAccount(ctx, "carol@example.com"); err != nil {
			t.Fatal(err)
		}
		q := f.restartQueue(t)
		waitEmpty(t, q)
		if n := f.folderCount(t, "alice@example.com", ""); n != 1 {
			t.Errorf("alice has %d copies, want 1", n)
		}
		dsn := f.inbox(t, "bob@example.com")
		if len(dsn) != 1 || !strings.Contains(dsn[0], "Final-Recipient: rfc822; carol@example.com") ||
			!strings.Contains(dsn[0], "Action: failed") || !strings.Contains(dsn[0], "Status: 5.") {
			t.Errorf("bounce to the sender: %q", dsn)
		}
	})
}
