package queue

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

// recordingLocal is a Config.Local that records each call with its item id
// and answers per recipient from fail (a count of failures still to give).
type recordingLocal struct {
	mu    sync.Mutex
	calls []string // "id: rcpt,rcpt", a final recipient marked "!"
	fail  map[string]int
}

func (l *recordingLocal) deliver(ctx context.Context, from string, rcpts []Recipient, msg []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var addrs []string
	errs := RecipientErrors{}
	for _, r := range rcpts {
		a := r.Addr
		if r.Final {
			a += "!"
		}
		addrs = append(addrs, a)
		errs[r.Addr] = nil
		if l.fail[r.Addr] > 0 {
			l.fail[r.Addr]--
			errs[r.Addr] = errors.New("store failed")
		}
	}
	l.calls = append(l.calls, ItemID(ctx)+": "+joinAddrs(addrs))
	return errs
}

func (l *recordingLocal) got() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

func joinAddrs(a []string) string {
	s := slices.Clone(a)
	slices.Sort(s)
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

// TestHeldItems: an item from EnqueueHeld waits for Release, which keeps
// only the recipients still to do; a held item found after a restart is
// delivered whole, under its id; per-recipient errors retry only the
// recipient that failed. The recipients marked final reach the local hook
// marked, also after a restart.
func TestHeldItems(t *testing.T) {
	msg := testMessage("held", 100)
	rcpts := []string{"a@local.test", "b@local.test", "c@local.test"}
	tests := []struct {
		name    string
		keep    []string
		restart bool // stop without Release and start a new queue
		fail    map[string]int
		want    []string // calls, "ID" standing for the item's id
	}{
		{name: "release all", keep: nil, want: nil},
		{name: "keep one", keep: []string{"b@local.test"}, want: []string{"ID: b@local.test!"}},
		{name: "restart", restart: true, want: []string{"ID: a@local.test,b@local.test!,c@local.test!"}},
		{name: "one of two fails once", keep: []string{"a@local.test", "c@local.test"}, fail: map[string]int{"c@local.test": 1},
			want: []string{"ID: a@local.test,c@local.test!", "ID: c@local.test!"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := queuetest.NewDNS(t)
			cfg, _ := testConfig(t, d)
			l := &recordingLocal{fail: tt.fail}
			cfg.LocalDomain = func(string) bool { return true }
			cfg.Local = l.deliver
			q, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			id, err := q.EnqueueHeld(context.Background(), "s@remote.test", rcpts, rcpts[1:], bytes.NewReader(msg), int64(len(msg)))
			if err != nil {
				t.Fatal(err)
			}
			if tt.restart {
				q.Shutdown(context.Background())
				q = startQueue(t, cfg)
			} else {
				t.Cleanup(func() { q.Shutdown(context.Background()) })
				if len(l.got()) != 0 {
					t.Fatalf("a held item was attempted: %v", l.got())
				}
				if err := q.Release(id, tt.keep); err != nil {
					t.Fatal(err)
				}
			}
			waitEmpty(t, q)
			var want []string
			for _, w := range tt.want {
				want = append(want, id+w[2:])
			}
			if got := l.got(); !slices.Equal(got, want) {
				t.Errorf("local deliveries %q, want %q", got, want)
			}
			if err := q.Release(id, nil); !errors.Is(err, ErrNotFound) {
				t.Errorf("second Release: %v", err)
			}
		})
	}
}

// TestFinalMarks: what EnqueueRetry marks final reaches the local hook
// marked, from the running queue and after a restart; an address that is
// not among the recipients cannot be marked.
func TestFinalMarks(t *testing.T) {
	msg := testMessage("final", 100)
	rcpts := []string{"a@local.test", "b+tag@local.test", "c@local.test"}
	for _, restart := range []bool{false, true} {
		t.Run(map[bool]string{false: "running", true: "restart"}[restart], func(t *testing.T) {
			cfg, _ := testConfig(t, queuetest.NewDNS(t))
			l := &recordingLocal{}
			cfg.LocalDomain = func(string) bool { return true }
			cfg.Local = l.deliver
			q, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !restart {
				if err := q.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			ctx := context.Background()
			if _, err := q.EnqueueRetry(ctx, "s@remote.test", rcpts, []string{"x@local.test"}, bytes.NewReader(msg), int64(len(msg))); !errors.Is(err, ErrInvalid) {
				t.Errorf("a final mark for no recipient: %v", err)
			}
			id, err := q.EnqueueRetry(ctx, "s@remote.test", rcpts, []string{"b+tag@local.test", "c@local.test", "c@local.test"}, bytes.NewReader(msg), int64(len(msg)))
			if err != nil {
				t.Fatal(err)
			}
			if restart {
				q.Shutdown(ctx)
				q = startQueue(t, cfg)
			} else {
				t.Cleanup(func() { q.Shutdown(context.Background()) })
			}
			waitEmpty(t, q)
			want := []string{id + ": a@local.test,b+tag@local.test!,c@local.test!"}
			if got := l.got(); !slices.Equal(got, want) {
				t.Errorf("local deliveries %q, want %q", got, want)
			}
		})
	}
}

// TestSpoolWithoutMarks: an item spooled before recipients could be marked
// final (testdata/spool-v1, written by that version: no "final" in its
// envelope, a .state after one attempt) still loads and delivers its
// pending recipient, unmarked, so the agent resolves it as it always did.
func TestSpoolWithoutMarks(t *testing.T) {
	cfg, _ := testConfig(t, queuetest.NewDNS(t))
	cfg.MaxAge = 100 * 365 * 24 * time.Hour // the file's creation time is fixed
	files, err := filepath.Glob(filepath.Join("testdata", "spool-v1", "*"))
	if err != nil || len(files) != 2 {
		t.Fatalf("testdata/spool-v1: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfg.Dir, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l := &recordingLocal{}
	cfg.LocalDomain = func(string) bool { return true }
	cfg.Local = l.deliver
	q := startQueue(t, cfg)
	waitEmpty(t, q)
	want := []string{"18edbf28664c473490f59ad285a9b916: team@local.test"}
	if got := l.got(); !slices.Equal(got, want) {
		t.Errorf("local deliveries %q, want %q", got, want)
	}
	if corrupt, _ := os.ReadDir(filepath.Join(cfg.Dir, "corrupt")); len(corrupt) > 0 {
		t.Errorf("quarantined: %v", corrupt)
	}
}
