package login

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// waitFor polls until cond holds; the slots' queue is filled from
// goroutines.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSlots(t *testing.T) {
	s := newSlots(1, 2, 1)
	ctx := context.Background()
	netA, netB, netC := netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("192.0.2.2/32"), netip.MustParsePrefix("2001:db8::/64")
	waiting := func() int { var st Stats; s.stats(&st); return st.Waiting }

	release, err := s.acquire(ctx, netA, false)
	if err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 3)
	queue := func(name string, network netip.Prefix, trusted bool) {
		want := waiting() + 1
		go func() {
			rel, err := s.acquire(ctx, network, trusted)
			if err != nil {
				order <- name + ": " + err.Error()
				return
			}
			order <- name
			rel()
		}()
		waitFor(t, name+" to queue", func() bool { return waiting() == want })
	}
	queue("a", netA, false)
	if _, err := s.acquire(ctx, netA, false); !errors.Is(err, ErrBusy) {
		t.Fatalf("second waiter from one network: %v, want ErrBusy", err)
	}
	queue("b", netB, false)
	if _, err := s.acquire(ctx, netC, false); !errors.Is(err, ErrBusy) {
		t.Fatalf("waiter beyond max_waiting: %v, want ErrBusy", err)
	}
	// A trusted login queues apart and goes first.
	queue("trusted", netC, true)

	// A waiter whose client leaves gives up its place.
	cctx, cancel := context.WithCancel(ctx)
	gone := make(chan error)
	go func() { _, err := s.acquire(cctx, netC, true); gone <- err }()
	waitFor(t, "the leaving waiter to queue", func() bool { return waiting() == 4 })
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if w := waiting(); w != 3 {
		t.Fatalf("%d waiting after a cancel, want 3", w)
	}

	release()
	for _, want := range []string{"trusted", "a", "b"} {
		if got := <-order; got != want {
			t.Fatalf("served %q, want %q", got, want)
		}
	}
	var st Stats
	s.stats(&st)
	if st.Verifying != 0 || st.Waiting != 0 || st.Refused != 2 || st.PeakVerifying != 1 || st.PeakWaiting != 4 {
		t.Fatalf("stats after the queue drained: %+v", st)
	}
	if len(s.perNetwork) != 0 {
		t.Fatalf("per-network shares left behind: %v", s.perNetwork)
	}
}
