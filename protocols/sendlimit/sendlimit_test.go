package sendlimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/userdb"
)

// clock is a settable clock for the windows.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)} }

// send runs one message of n recipients; it returns the first refusal.
func send(l *Limiter, account string, n int) error {
	tx, err := l.Begin(context.Background(), account)
	if err != nil {
		return err
	}
	for range n {
		if err := tx.Recipient(); err != nil {
			tx.Abort()
			return err
		}
	}
	tx.Commit()
	return nil
}

func refusal(t *testing.T, err error) *Refusal {
	t.Helper()
	var r *Refusal
	if !errors.As(err, &r) {
		t.Fatalf("got %v, want a *Refusal", err)
	}
	return r
}

func n(v int64) *int64 { return &v }

func TestLimits(t *testing.T) {
	overrides := map[string]userdb.SendLimits{
		"vip@a.example": {MessagesPerHour: n(0)},
		"few@a.example": {MessagesPerHour: n(1)},
	}
	domains := map[string]userdb.SendLimits{
		"small.example": {MessagesPerHour: n(2), RecipientsPerMessage: n(2)},
	}
	lookup := func(_ context.Context, acct string) (userdb.SendLimits, userdb.SendLimits, error) {
		_, d, _ := userdb.Split(acct)
		return overrides[acct], domains[d], nil
	}
	for _, tc := range []struct {
		name    string
		cfg     Config
		sends   []string // "account:recipients", in order
		refused map[int]string
	}{
		{
			name:    "n+1-th message of the hour",
			cfg:     Config{Account: Limits{MessagesPerHour: 3}},
			sends:   []string{"u@a.example:1", "u@a.example:1", "u@a.example:1", "u@a.example:1", "v@a.example:1"},
			refused: map[int]string{3: "u@a.example " + MessagesPerHour},
		},
		{
			name:    "recipients per message",
			cfg:     Config{Account: Limits{RecipientsPerMessage: 2}},
			sends:   []string{"u@a.example:2", "u@a.example:3"},
			refused: map[int]string{1: "u@a.example " + RecipientsPerMessage},
		},
		{
			name:    "recipients per hour, across messages",
			cfg:     Config{Account: Limits{RecipientsPerHour: 5}},
			sends:   []string{"u@a.example:3", "u@a.example:3", "u@a.example:2", "w@a.example:5"},
			refused: map[int]string{1: "u@a.example " + RecipientsPerHour},
		},
		{
			name:    "domain, its accounts together",
			cfg:     Config{Domain: Limits{MessagesPerHour: 2}},
			sends:   []string{"u@a.example:1", "v@a.example:1", "w@a.example:1", "u@b.example:1"},
			refused: map[int]string{2: "@a.example " + MessagesPerHour},
		},
		{
			name:    "account override: unlimited",
			cfg:     Config{Account: Limits{MessagesPerHour: 1}},
			sends:   []string{"vip@a.example:1", "vip@a.example:1", "vip@a.example:1", "u@a.example:1", "u@a.example:1"},
			refused: map[int]string{4: "u@a.example " + MessagesPerHour},
		},
		{
			name:    "account override: lower",
			cfg:     Config{Account: Limits{MessagesPerHour: 10}},
			sends:   []string{"few@a.example:1", "few@a.example:1"},
			refused: map[int]string{1: "few@a.example " + MessagesPerHour},
		},
		{
			name:    "domain override",
			cfg:     Config{Account: Limits{RecipientsPerMessage: 10}},
			sends:   []string{"u@small.example:3", "u@small.example:2", "v@small.example:1", "u@small.example:1"},
			refused: map[int]string{0: "@small.example " + RecipientsPerMessage, 3: "@small.example " + MessagesPerHour},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Lookup = lookup
			cfg.Now = newClock().Now
			l := New(cfg)
			for i, s := range tc.sends {
				acct, count, _ := strings.Cut(s, ":")
				rcpts, _ := strconv.Atoi(count)
				err := send(l, acct, rcpts)
				want, refused := tc.refused[i]
				switch {
				case !refused && err != nil:
					t.Errorf("send %d (%s): %v, want accepted", i, s, err)
				case refused:
					r := refusal(t, err)
					if got := r.Key + " " + r.Limit; got != want {
						t.Errorf("send %d (%s): refused by %q, want %q", i, s, got, want)
					}
				}
			}
		})
	}
}

func TestWindowSlides(t *testing.T) {
	c := newClock()
	l := New(Config{Account: Limits{MessagesPerHour: 4}, Now: c.Now})
	for i := range 4 {
		if err := send(l, "u@a.example", 1); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	refusal(t, send(l, "u@a.example", 1))
	// Into the next hour's window by a quarter: three quarters of the
	// four still count, so one more goes and the next does not.
	c.Add(75 * time.Minute)
	if err := send(l, "u@a.example", 1); err != nil {
		t.Fatalf("after 75 minutes: %v", err)
	}
	refusal(t, send(l, "u@a.example", 1))
	c.Add(2 * time.Hour)
	for i := range 4 {
		if err := send(l, "u@a.example", 1); err != nil {
			t.Fatalf("two hours on, message %d: %v", i, err)
		}
	}
}

func TestAbortGivesBack(t *testing.T) {
	l := New(Config{Account: Limits{MessagesPerHour: 1, RecipientsPerHour: 2}, Now: newClock().Now})
	tx, err := l.Begin(context.Background(), "u@a.example")
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Recipient(); err != nil {
		t.Fatal(err)
	}
	tx.Abort()
	tx.Abort() // a second Abort (Reset after a failed DATA) changes nothing
	if err := send(l, "u@a.example", 2); err != nil {
		t.Fatalf("after an aborted transaction: %v", err)
	}
	if u := l.Near(0); len(u) != 2 || u[0].Messages != 1 || u[0].Recipients != 2 {
		t.Errorf("usage %+v, want one message of two recipients for the account and its domain", u)
	}
}

func TestLookupFailure(t *testing.T) {
	down := errors.New("directory down")
	l := New(Config{Lookup: func(context.Context, string) (userdb.SendLimits, userdb.SendLimits, error) {
		return userdb.SendLimits{}, userdb.SendLimits{}, down
	}})
	if _, err := l.Begin(context.Background(), "u@a.example"); !errors.Is(err, down) {
		t.Fatalf("Begin: %v, want the lookup's error", err)
	}
}

func TestNear(t *testing.T) {
	l := New(Config{Account: Limits{MessagesPerHour: 10, RecipientsPerHour: 100}, Now: newClock().Now})
	for range 9 {
		send(l, "busy@a.example", 1)
	}
	send(l, "calm@a.example", 50)
	send(l, "idle@a.example", 1)
	got := l.Near(0.5)
	var keys []string
	for _, u := range got {
		keys = append(keys, fmt.Sprintf("%s %.2f", u.Key, u.Fraction))
	}
	want := []string{"busy@a.example 0.90", "calm@a.example 0.50"}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Errorf("Near(0.5) = %v, want %v", keys, want)
	}
}

func TestBoundedMemory(t *testing.T) {
	c := newClock()
	l := New(Config{Account: Limits{MessagesPerHour: 1}, MaxEntries: 100, Now: c.Now})
	for i := range 1000 {
		send(l, fmt.Sprintf("u%d@d%d.example", i, i%7), 1)
		if len(l.entries) > 100 {
			t.Fatalf("%d entries after %d accounts, want at most 100", len(l.entries), i+1)
		}
	}
}

// BenchmarkMessage is the limiter's cost for one message of one
// recipient: Begin, Recipient, Commit, with the directory's limits cached.
func BenchmarkMessage(b *testing.B) {
	l := New(Config{Account: Limits{MessagesPerHour: 1 << 40, RecipientsPerHour: 1 << 40}})
	accounts := make([]string, 1000)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("user%d@d%d.example", i, i%10)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := send(l, accounts[i%len(accounts)], 1); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func TestSetLimits(t *testing.T) {
	l := New(Config{Account: Limits{MessagesPerHour: 1}, Now: newClock().Now})
	if err := send(l, "u@a.example", 1); err != nil {
		t.Fatal(err)
	}
	refusal(t, send(l, "u@a.example", 1))
	l.SetLimits(Limits{MessagesPerHour: 2}, Limits{})
	if err := send(l, "u@a.example", 1); err != nil {
		t.Fatalf("after raising the limit: %v", err)
	}
	refusal(t, send(l, "u@a.example", 1))
}
