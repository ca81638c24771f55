package userdb

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCacheForget: after a password change behind the cache, Forget of
// the address (or Flush) makes the old password fail at once, while other
// users' entries stay cached; SetTTL changes how long new answers live.
func TestCacheForget(t *testing.T) {
	u, m := testUsers()
	now := time.Unix(1e9, 0)
	c := NewCache(m, m, CacheConfig{TTL: time.Hour, NegativeTTL: time.Hour, Now: func() time.Time { return now }})
	u.Accounts, u.Domains = c.Accounts(), c.Domains()
	ctx := context.Background()
	login := func(user, pw string) error {
		t.Helper()
		_, err := u.Authenticate(ctx, user, pw)
		return err
	}
	for _, f := range []struct {
		name  string
		flush func()
	}{
		{"forget", func() { c.Forget("alice@example.com") }},
		{"flush", c.Flush},
	} {
		t.Run(f.name, func(t *testing.T) {
			m.mu.Lock()
			m.passwords["alice@example.com"] = "old"
			m.mu.Unlock()
			c.Flush()
			if err := login("alice@example.com", "old"); err != nil {
				t.Fatal(err)
			}
			if err := login("bob@example.com", "secret-bob"); err != nil {
				t.Fatal(err)
			}
			m.mu.Lock()
			m.passwords["alice@example.com"] = "new"
			m.mu.Unlock()
			if err := login("alice@example.com", "old"); err != nil {
				t.Fatalf("the cached old password: %v (the cache is not in the way?)", err)
			}
			f.flush()
			if err := login("alice@example.com", "old"); !errors.Is(err, ErrBadCredentials) {
				t.Errorf("old password after %s: %v, want ErrBadCredentials", f.name, err)
			}
			if err := login("alice@example.com", "new"); err != nil {
				t.Errorf("new password after %s: %v", f.name, err)
			}
			before := m.calls.Load()
			if err := login("bob@example.com", "secret-bob"); err != nil {
				t.Fatal(err)
			}
			cached := m.calls.Load() == before
			if f.name == "forget" && !cached {
				t.Error("Forget of alice dropped bob's entry")
			}
		})
	}

	c.SetTTL(time.Minute, 0)
	if ttl, neg := c.TTL(); ttl != time.Minute || neg != time.Hour {
		t.Errorf("TTL after SetTTL = %v, %v", ttl, neg)
	}
	c.Flush()
	if err := login("bob@example.com", "secret-bob"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	before := m.calls.Load()
	if err := login("bob@example.com", "secret-bob"); err != nil {
		t.Fatal(err)
	}
	if m.calls.Load() == before {
		t.Error("an answer cached after SetTTL(1m) was still served 2m later")
	}
}
