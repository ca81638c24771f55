// Package greylisttest checks a greylist.Store against the greylisting
// rules, for every store implementation's tests.
package greylisttest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/greylist"
)

// Run checks the greylisting rules against store with an injected
// clock, no sleeping: first attempt deferred, early retry deferred, retry
// after the delay accepted and remembered, a late retry starting over,
// the client network grouping, and expiry. Store implementations call it
// from their tests.
func Run(t *testing.T, store greylist.Store) {
	t.Helper()
	now := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	g := &greylist.Greylister{Store: store, Delay: 5 * time.Minute, RetryMax: time.Hour, Remember: 24 * time.Hour, Now: func() time.Time { return now }}
	ctx := context.Background()
	step := func(what, client, from, to string, wantDefer bool) greylist.Decision {
		t.Helper()
		d, err := g.Check(ctx, netip.MustParseAddr(client), from, to)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if d.Defer != wantDefer {
			t.Fatalf("%s: defer=%v, want %v", what, d.Defer, wantDefer)
		}
		return d
	}
	if d := step("first attempt", "192.0.2.1", "a@x.test", "u@example.net", true); d.RetryIn != 5*time.Minute {
		t.Errorf("first attempt: retry in %v", d.RetryIn)
	}
	now = now.Add(2 * time.Minute)
	if d := step("early retry", "192.0.2.1", "a@x.test", "u@example.net", true); d.RetryIn != 3*time.Minute {
		t.Errorf("early retry: retry in %v, want 3m (the clock does not restart)", d.RetryIn)
	}
	now = now.Add(3 * time.Minute)
	step("retry after the delay", "192.0.2.1", "A@X.test", "u@EXAMPLE.net", false)
	// Another host of the same /24 is the same client.
	step("same network", "192.0.2.200", "a@x.test", "u@example.net", false)
	step("other recipient", "192.0.2.1", "a@x.test", "v@example.net", true)
	step("other sender", "192.0.2.1", "b@x.test", "u@example.net", true)
	step("other network", "198.51.100.1", "a@x.test", "u@example.net", true)
	step("null sender", "192.0.2.1", "", "u@example.net", true)

	// Passed triplets stay passed while mail keeps coming…
	now = now.Add(20 * time.Hour)
	step("passed, 20h later", "192.0.2.1", "a@x.test", "u@example.net", false)
	now = now.Add(20 * time.Hour)
	step("passed, 20h after the last", "192.0.2.1", "a@x.test", "u@example.net", false)
	// …and are forgotten after Remember without mail.
	now = now.Add(25 * time.Hour)
	step("forgotten", "192.0.2.1", "a@x.test", "u@example.net", true)

	// A retry later than RetryMax starts a new round.
	step("late: first", "203.0.113.5", "late@x.test", "u@example.net", true)
	now = now.Add(2 * time.Hour)
	step("late: retry after RetryMax", "203.0.113.5", "late@x.test", "u@example.net", true)
	now = now.Add(6 * time.Minute)
	step("late: retry in the new round", "203.0.113.5", "late@x.test", "u@example.net", false)

	// Expire removes what is older than both windows.
	now = now.Add(48 * time.Hour)
	step("fresh", "192.0.2.1", "new@x.test", "u@example.net", true)
	n, err := g.Expire(ctx)
	if err != nil || n == 0 {
		t.Errorf("expire: %d %v", n, err)
	}
	if _, found, _ := store.Get(ctx, greylist.Triplet{Client: "192.0.2.0/24", Sender: "new@x.test", Recipient: "u@example.net"}); !found {
		t.Error("expire removed a fresh entry")
	}
	if _, found, _ := store.Get(ctx, greylist.Triplet{Client: "203.0.113.0/24", Sender: "late@x.test", Recipient: "u@example.net"}); found {
		t.Error("expire kept an old entry")
	}
}
