package greylist

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// clock is an injectable time source tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)} }
func ip(s string) netip.Addr         { return netip.MustParseAddr(s) }
func (c *clock) greylister(s Store) *Greylister {
	return &Greylister{Store: s, Delay: 5 * time.Minute, RetryMax: time.Hour, Remember: 24 * time.Hour, Now: c.now}
}

func TestAllowlists(t *testing.T) {
	c := newClock()
	g := c.greylister(&Memory{})
	g.AllowNetworks = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	g.AllowDomains = []string{"partner.test"}
	for _, tc := range []struct {
		ip, from, to string
		deferred     bool
	}{
		{"192.0.2.9", "a@x.test", "u@example.net", false},
		{"198.51.100.1", "a@partner.test", "u@example.net", false},
		{"198.51.100.1", "a@mail.PARTNER.test", "u@example.net", false},
		{"198.51.100.1", "a@notpartner.test", "u@example.net", true},
		{"198.51.100.1", "a@x.test", "u@partner.test", false},
		{"198.51.100.1", "", "u@example.net", true},
	} {
		d, err := g.Check(context.Background(), ip(tc.ip), tc.from, tc.to)
		if err != nil || d.Defer != tc.deferred {
			t.Errorf("%s %s %s: %+v %v, want defer %v", tc.ip, tc.from, tc.to, d, err, tc.deferred)
		}
	}
}
