package throttle

import (
	"bytes"
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
)

// clock is a manual clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var (
	ip1 = netip.MustParseAddr("192.0.2.1")
	ip2 = netip.MustParseAddr("192.0.2.2")
)

func TestDelaySchedule(t *testing.T) {
	c := newClock()
	l := New(Config{Now: c.Now, PerIP: Policy{LockoutAfter: -1}, PerAccount: Policy{LockoutAfter: -1}})
	want := []time.Duration{0, 0, 1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		d, locked := l.Check(ip1, "bob@example.org")
		if locked {
			t.Fatalf("after %d failures: locked with lockouts disabled", i)
		}
		if d != w {
			t.Fatalf("after %d failures: delay %v, want %v", i, d, w)
		}
		l.Failure(ip1, "bob@example.org")
	}
}

func TestLockoutAndExpiry(t *testing.T) {
	var logBuf bytes.Buffer
	c := newClock()
	l := New(Config{
		Now:        c.Now,
		Logger:     slog.New(slog.NewTextHandler(&logBuf, nil)),
		PerIP:      Policy{LockoutAfter: -1},
		PerAccount: Policy{LockoutAfter: 3, Window: time.Minute, Lockout: 10 * time.Minute},
	})
	for range 3 {
		l.Failure(ip1, "Bob@Example.org")
	}
	if _, locked := l.Check(ip2, "bob@example.org"); !locked {
		t.Fatal("account not locked after 3 failures (case folded)")
	}
	if !strings.Contains(logBuf.String(), "authentication lockout") || !strings.Contains(logBuf.String(), "account=bob@example.org") {
		t.Fatalf("lockout not logged: %q", logBuf.String())
	}
	if _, locked := l.Check(ip2, "alice@example.org"); locked {
		t.Fatal("other account locked")
	}
	// A success during the lockout must not lift it.
	l.Success(ip1, "bob@example.org")
	if _, locked := l.Check(ip1, "bob@example.org"); !locked {
		t.Fatal("success lifted a lockout")
	}
	c.Advance(10*time.Minute + time.Second)
	if d, locked := l.Check(netip.Addr{}, "bob@example.org"); locked || d != 0 {
		t.Fatalf("after lockout: delay %v locked %v", d, locked)
	}
}

func TestWindowForgets(t *testing.T) {
	c := newClock()
	l := New(Config{Now: c.Now, PerAccount: Policy{Window: time.Minute}, PerIP: Policy{Window: time.Minute}})
	for range 4 {
		l.Failure(ip1, "bob")
	}
	if d, _ := l.Check(ip1, "bob"); d != 4*time.Second {
		t.Fatalf("delay %v", d)
	}
	c.Advance(2 * time.Minute)
	if d, _ := l.Check(ip1, "bob"); d != 0 {
		t.Fatalf("delay after window %v", d)
	}
	l.Failure(ip1, "bob")
	if d, _ := l.Check(ip1, "bob"); d != 0 {
		t.Fatalf("count did not restart after window: %v", d)
	}
}

func TestSuccessResetsAccountNotIP(t *testing.T) {
	c := newClock()
	l := New(Config{Now: c.Now})
	for range 5 {
		l.Failure(ip1, "bob")
	}
	l.Success(ip1, "bob")
	if d, _ := l.Check(netip.Addr{}, "bob"); d != 0 {
		t.Fatalf("account delay after success %v", d)
	}
	if d, _ := l.Check(ip1, ""); d == 0 {
		t.Fatal("ip counter was reset by a success")
	}
}

func TestIPv6GroupedByPrefix(t *testing.T) {
	c := newClock()
	l := New(Config{Now: c.Now, PerIP: Policy{LockoutAfter: 2}})
	l.Failure(netip.MustParseAddr("2001:db8::1"), "")
	l.Failure(netip.MustParseAddr("2001:db8::ffff:2"), "")
	if _, locked := l.Check(netip.MustParseAddr("2001:db8::3"), ""); !locked {
		t.Fatal("same /64 not locked")
	}
	if _, locked := l.Check(netip.MustParseAddr("2001:db8:0:1::3"), ""); locked {
		t.Fatal("other /64 locked")
	}
	// IPv4-mapped addresses count as the IPv4 address.
	l.Failure(netip.MustParseAddr("::ffff:192.0.2.9"), "")
	l.Failure(netip.MustParseAddr("192.0.2.9"), "")
	if _, locked := l.Check(netip.MustParseAddr("192.0.2.9"), ""); !locked {
		t.Fatal("mapped address counted separately")
	}
}

func TestBoundedMemoryKeepsLockouts(t *testing.T) {
	c := newClock()
	l := New(Config{Now: c.Now, MaxEntries: 100, PerAccount: Policy{LockoutAfter: 2}, PerIP: Policy{LockoutAfter: -1}})
	l.Failure(netip.Addr{}, "victim")
	l.Failure(netip.Addr{}, "victim")
	for i := range 10000 {
		l.Failure(netip.Addr{}, fmt.Sprintf("junk%d", i))
		if n := l.Len(); n > 100 {
			t.Fatalf("table grew to %d", n)
		}
	}
	if _, locked := l.Check(netip.Addr{}, "victim"); !locked {
		t.Fatal("flooding the table lifted a lockout")
	}
}

func TestDo(t *testing.T) {
	c := newClock()
	l := New(Config{Now: c.Now, PerAccount: Policy{LockoutAfter: 2}, PerIP: Policy{LockoutAfter: -1}})
	ctx := context.Background()
	bad := errors.New("bad password")
	tests := []struct {
		name    string
		result  error
		want    error
		wantLck bool
	}{
		{"temporary failures are not counted", fmt.Errorf("x: %w", userdb.ErrUnavailable), userdb.ErrUnavailable, false},
		{"temporary again", fmt.Errorf("x: %w", userdb.ErrUnavailable), userdb.ErrUnavailable, false},
		{"first failure", bad, bad, false},
		{"second failure locks", bad, bad, true},
		{"locked: attempt not run", nil, ErrLocked, true},
	}
	for _, tt := range tests {
		ran := false
		err := l.Do(ctx, ip1, "bob", func(context.Context) error { ran = true; return tt.result })
		if !errors.Is(err, tt.want) {
			t.Fatalf("%s: err %v, want %v", tt.name, err, tt.want)
		}
		if tt.want == ErrLocked && ran {
			t.Fatalf("%s: attempt ran during lockout", tt.name)
		}
		if _, locked := l.Check(ip1, "bob"); locked != tt.wantLck {
			t.Fatalf("%s: locked=%v", tt.name, locked)
		}
	}
}

func TestDoDelayHonoursContext(t *testing.T) {
	l := New(Config{PerAccount: Policy{FreeFailures: 1, BaseDelay: time.Hour, MaxDelay: time.Hour}})
	l.Failure(ip1, "bob")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := l.Do(ctx, ip1, "bob", func(context.Context) error { t.Fatal("attempt ran"); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

func TestNilLimiter(t *testing.T) {
	var l *Limiter
	l.Failure(ip1, "x")
	l.Success(ip1, "x")
	if d, lk := l.Check(ip1, "x"); d != 0 || lk {
		t.Fatal("nil limiter throttles")
	}
	if err := l.Do(context.Background(), ip1, "x", func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrent(t *testing.T) {
	l := New(Config{MaxEntries: 50})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				ip := netip.AddrFrom4([4]byte{10, 0, byte(g), byte(i)})
				acct := fmt.Sprintf("u%d", i%70)
				l.Check(ip, acct)
				if i%3 == 0 {
					l.Success(ip, acct)
				} else {
					l.Failure(ip, acct)
				}
			}
		})
	}
	wg.Wait()
	if n := l.Len(); n > 50 {
		t.Fatalf("table grew to %d", n)
	}
}

func BenchmarkFailure(b *testing.B) {
	l := New(Config{MaxEntries: 10000})
	for i := 0; b.Loop(); i++ {
		l.Failure(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), "u"+fmt.Sprint(i%20000))
	}
}
