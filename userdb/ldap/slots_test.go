package ldap

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSlotsEarliestDeadlineFirst: with every slot taken, a released slot
// goes to the waiter whose deadline is nearest, whatever the order they
// came in; a waiter whose context ends leaves the queue without taking
// one.
func TestSlotsEarliestDeadlineFirst(t *testing.T) {
	s := newSlots(1)
	if err := s.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(time.Hour)
	// Arrival order: late, early, gone (cancelled), middle, none.
	waiters := []struct {
		name     string
		deadline time.Time // zero: no deadline
		cancel   bool
	}{
		{"late", base.Add(3 * time.Minute), false},
		{"early", base.Add(1 * time.Minute), false},
		{"gone", base, true},
		{"middle", base.Add(2 * time.Minute), false},
		{"none", time.Time{}, false},
	}
	got := make(chan string, len(waiters))
	var cancelGone context.CancelFunc
	goneErr := make(chan error, 1)
	for _, w := range waiters {
		ctx, cancel := context.WithCancel(context.Background())
		if !w.deadline.IsZero() {
			ctx, cancel = context.WithDeadline(context.Background(), w.deadline)
		}
		defer cancel()
		if w.cancel {
			cancelGone = cancel
		}
		queued := waitQueued(s) + 1
		go func() {
			err := s.acquire(ctx)
			if w.cancel {
				goneErr <- err
				return
			}
			if err != nil {
				t.Errorf("%s: %v", w.name, err)
			}
			got <- w.name
		}()
		for waitQueued(s) < queued {
			time.Sleep(time.Millisecond)
		}
	}
	cancelGone()
	if err := <-goneErr; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter: %v", err)
	}
	for _, want := range []string{"early", "middle", "late", "none"} {
		s.release()
		if name := <-got; name != want {
			t.Errorf("slot went to %s, want %s", name, want)
		}
	}
	s.release()
	if s.free != 1 || len(s.waiters) != 0 {
		t.Errorf("after all releases: free %d, %d waiting; want 1, 0", s.free, len(s.waiters))
	}
}

func waitQueued(s *slots) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiters)
}
