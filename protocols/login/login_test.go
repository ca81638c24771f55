package login

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/password"
)

// fakeClock is an injected clock: Sleep records the delay and moves time
// on at once, so delay tests take no time.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.slept = append(c.slept, d)
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// lastSleep is the delay of the most recent attempt (0 if it slept none
// since the previous call).
func (c *fakeClock) lastSleep() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.slept) == 0 {
		return 0
	}
	d := c.slept[len(c.slept)-1]
	c.slept = c.slept[:0]
	return d
}

// hashDirectory checks passwords against stored SSHA hashes the way the
// directory sources do (Caps.Verify under the context's admission): cheap
// enough for schedule tests, real enough to be counted.
type hashDirectory map[string]string

func (d hashDirectory) check(ctx context.Context, username, secret string) error {
	stored, ok := d[username]
	if !ok {
		return fmt.Errorf("%s: %w", username, userdb.ErrBadCredentials)
	}
	match, err := password.Caps{}.Verify(ctx, stored, secret)
	switch {
	case errors.Is(err, password.ErrNotAdmitted):
		return userdb.Unavailable("verify", err)
	case err != nil:
		return fmt.Errorf("%s: %w: stored hash: %w", username, userdb.ErrBadCredentials, err)
	case !match:
		return fmt.Errorf("%s: %w", username, userdb.ErrBadCredentials)
	}
	return nil
}

func newHashDirectory(t testing.TB, users ...string) hashDirectory {
	t.Helper()
	d := hashDirectory{}
	for _, u := range users {
		h, err := password.Hash("SSHA", "pw-"+u)
		if err != nil {
			t.Fatal(err)
		}
		d[u] = h
	}
	return d
}

func newService(t testing.TB, cfg Config) *Service {
	t.Helper()
	if cfg.DummyScheme == "" {
		cfg.DummyScheme = "SSHA" // schedule tests need no argon2 cost
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestDelaySchedule(t *testing.T) {
	s := newService(t, Config{})
	want := []time.Duration{0, 0, 0, 1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second, 15 * time.Second}
	for n, w := range want {
		if got := s.delay(n); got != w {
			t.Errorf("delay after %d failures = %v, want %v", n, got, w)
		}
	}
	if got := s.delay(1 << 20); got != 15*time.Second {
		t.Errorf("delay after a million failures = %v, want the 15s cap", got)
	}
}

// Ten failures on one account from ten client networks lock nobody out:
// the owner's correct password from an eleventh network logs in after at
// most the cap, and right away from the network it used before.
func TestNoLockoutAfterDistributedFailures(t *testing.T) {
	clock := newFakeClock()
	s := newService(t, Config{Now: clock.Now, Sleep: clock.Sleep})
	const owner = "owner@example.org"
	dir := newHashDirectory(t, owner)
	ctx := context.Background()

	// The owner's phone logged in yesterday from its usual network.
	if err := s.Attempt(ctx, addr("2001:db8:1:2::10"), owner, "pw-"+owner, dir.check); err != nil {
		t.Fatalf("first login: %v", err)
	}
	clock.advance(20 * time.Hour)

	var delays []time.Duration
	for i := range 10 {
		err := s.Attempt(ctx, addr(fmt.Sprintf("198.51.100.%d", i+1)), owner, "guess", dir.check)
		if !errors.Is(err, userdb.ErrBadCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
		delays = append(delays, clock.lastSleep())
	}
	for i, d := range delays {
		if d > s.cfg.PenaltyCap {
			t.Errorf("guess %d waited %v, over the cap", i, d)
		}
	}
	if delays[len(delays)-1] == 0 {
		t.Errorf("ten guesses in a row were never slowed: %v", delays)
	}

	// The owner, from a network it never used: slowed, within the cap.
	if err := s.Attempt(ctx, addr("192.0.2.77"), owner, "pw-"+owner, dir.check); err != nil {
		t.Fatalf("owner from a new network: %v", err)
	}
	if d := clock.lastSleep(); d > s.cfg.PenaltyCap {
		t.Fatalf("owner from a new network waited %v, over the %v cap", d, s.cfg.PenaltyCap)
	}
	// The owner's usual network (same /64, another address): not at all.
	if err := s.Attempt(ctx, addr("2001:db8:1:2::99"), owner, "pw-"+owner, dir.check); err != nil {
		t.Fatalf("owner from its usual network: %v", err)
	}
	if d := clock.lastSleep(); d != 0 {
		t.Fatalf("owner from its usual network waited %v for strangers' failures", d)
	}
}

func TestTrust(t *testing.T) {
	const owner = "owner@example.org"
	home := addr("192.0.2.1")
	tests := []struct {
		name     string
		setup    func(s *Service, clock *fakeClock, dir hashDirectory)
		wantWait bool
	}{
		{"trusted network skips the account's delay", func(s *Service, clock *fakeClock, dir hashDirectory) {}, false},
		{"trust expires", func(s *Service, clock *fakeClock, dir hashDirectory) { clock.advance(25 * time.Hour) }, true},
		{"a failure from the network ends its trust", func(s *Service, clock *fakeClock, dir hashDirectory) {
			s.Attempt(context.Background(), home, owner, "typo", dir.check)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			s := newService(t, Config{Now: clock.Now, Sleep: clock.Sleep})
			dir := newHashDirectory(t, owner)
			ctx := context.Background()
			if err := s.Attempt(ctx, home, owner, "pw-"+owner, dir.check); err != nil {
				t.Fatal(err)
			}
			tt.setup(s, clock, dir)
			for i := range 8 {
				s.Attempt(ctx, addr(fmt.Sprintf("203.0.113.%d", i+1)), owner, "guess", dir.check)
			}
			clock.lastSleep()
			if err := s.Attempt(ctx, home, owner, "pw-"+owner, dir.check); err != nil {
				t.Fatal(err)
			}
			if waited := clock.lastSleep() > 0; waited != tt.wantWait {
				t.Fatalf("waited: %v, want %v", waited, tt.wantWait)
			}
		})
	}
}

// A client network's own failures slow its attempts on every account, and
// are forgotten after the window.
func TestNetworkPenalty(t *testing.T) {
	clock := newFakeClock()
	s := newService(t, Config{Now: clock.Now, Sleep: clock.Sleep})
	dir := newHashDirectory(t, "a@example.org")
	ctx := context.Background()
	spray := addr("2001:db8:aa:bb::1")
	for i := range 6 {
		// Each address of the /64 counts as the same network.
		client := addr(fmt.Sprintf("2001:db8:aa:bb::%x", i+1))
		s.Attempt(ctx, client, fmt.Sprintf("user%d@example.org", i), "guess", dir.check)
	}
	clock.lastSleep()
	s.Attempt(ctx, spray, "a@example.org", "pw-a@example.org", dir.check)
	if d := clock.lastSleep(); d == 0 {
		t.Fatal("a spraying network was not slowed on a fresh account")
	}
	clock.advance(16 * time.Minute)
	s.Attempt(ctx, spray, "a@example.org", "pw-a@example.org", dir.check)
	if d := clock.lastSleep(); d != 0 {
		t.Fatalf("penalty outlived the window: %v", d)
	}
}

// Case and the default domain do not make a fresh account record.
func TestAccountKeyIsCanonical(t *testing.T) {
	clock := newFakeClock()
	users := &userdb.Users{DefaultDomain: "example.org"}
	s := newService(t, Config{Now: clock.Now, Sleep: clock.Sleep, Canonical: users.LoginAddress})
	dir := newHashDirectory(t)
	ctx := context.Background()
	for i, login := range []string{"alice", "Alice@Example.ORG", "ALICE", "alice@example.org", "aLiCe"} {
		s.Attempt(ctx, addr(fmt.Sprintf("198.51.100.%d", i+1)), login, "guess", dir.check)
	}
	clock.lastSleep()
	s.Attempt(ctx, addr("192.0.2.1"), "alice", "guess", dir.check)
	if d := clock.lastSleep(); d == 0 {
		t.Fatal("five spellings of one account were counted apart")
	}
}

// Outages and departed clients are not the user's failures.
func TestTemporaryNotCounted(t *testing.T) {
	clock := newFakeClock()
	s := newService(t, Config{Now: clock.Now, Sleep: clock.Sleep, PenaltyFreeFailures: -1})
	down := func(context.Context, string, string) error {
		return userdb.Unavailable("ldap search", errors.New("connection refused"))
	}
	for range 5 {
		if err := s.Attempt(context.Background(), addr("192.0.2.1"), "a@example.org", "x", down); !userdb.Temporary(err) {
			t.Fatalf("outage: %v", err)
		}
	}
	if d := clock.lastSleep(); d != 0 {
		t.Fatalf("outages were counted as failures: waited %v", d)
	}
	if st := s.Stats(); st.Unavailable != 5 || st.Failed != 0 || st.Dummies != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A stored hash over the caps is the admin's to fix: it is logged once
// however often it is tried, and each try is a failure that costs one
// (dummy) verification, like any refusal.
func TestCostlyHashLoggedOnce(t *testing.T) {
	var log strings.Builder
	clock := newFakeClock()
	s := newService(t, Config{Now: clock.Now, Sleep: clock.Sleep, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	dir := hashDirectory{"greedy@example.org": "{ARGON2ID}$argon2id$v=19$m=4194304,t=3,p=1$9PzGTFlpFkYQDS9ckYRdVA$bgj7OFaxd6S+eXW9HREO5xbCmO8I3EzunFgZal6CNGs"}
	for range 4 {
		err := s.Attempt(context.Background(), addr("192.0.2.1"), "greedy@example.org", "secret", dir.check)
		if !errors.Is(err, password.ErrTooCostly) || !errors.Is(err, userdb.ErrBadCredentials) {
			t.Fatalf("Attempt: %v", err)
		}
	}
	if n := strings.Count(log.String(), "stored password hash refused"); n != 1 {
		t.Fatalf("logged %d times:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), "account=greedy@example.org") {
		t.Fatalf("log does not name the account:\n%s", log.String())
	}
	if st := s.Stats(); st.Failed != 4 || st.Verifications != 4 || st.Dummies != 4 || st.Penalties == 0 {
		t.Fatalf("stats %+v", st)
	}
}
