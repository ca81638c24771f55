package queue

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

// recordingLocal is a Config.Local that records each call with its item id
// and answers per recipient from fail (a count of failures still to give).
type recordingLocal struct {
	mu    sync.Mutex
	calls []string // "id: rcpt,rcpt"
	fail  map[string]int
}

func (l *recordingLocal) deliver(ctx context.Context, from string, rcpts []string, msg []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, ItemID(ctx)+": "+joinAddrs(rcpts))
	errs := RecipientErrors{}
	for _, r := range rcpts {
		errs[r] = nil
		if l.fail[r] > 0 {
			l.fail[r]--
			errs[r] = errors.New("store failed")
		}
	}
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
// recipient that failed.
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
		{name: "keep one", keep: []string{"b@local.test"}, want: []string{"ID: b@local.test"}},
		{name: "restart", restart: true, want: []string{"ID: a@local.test,b@local.test,c@local.test"}},
		{name: "one of two fails once", keep: []string{"a@local.test", "c@local.test"}, fail: map[string]int{"c@local.test": 1},
			want: []string{"ID: a@local.test,c@local.test", "ID: c@local.test"}},
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
			id, err := q.EnqueueHeld(context.Background(), "s@remote.test", rcpts, bytes.NewReader(msg), int64(len(msg)))
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
