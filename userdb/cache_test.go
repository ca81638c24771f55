package userdb

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// stuckSource never answers an account lookup until released, whatever
// its context says: a backend with a bug, or a driver call that ignores
// cancellation. It declares timeout (Bounded) when that is not zero.
type stuckSource struct {
	*memSource
	timeout time.Duration
	release chan struct{}
	started chan struct{} // receives once per backend call
}

func (s *stuckSource) LookupAccount(ctx context.Context, a string) (*Account, error) {
	s.started <- struct{}{}
	<-s.release
	return s.memSource.LookupAccount(ctx, a)
}

type boundedStuckSource struct{ *stuckSource }

func (s boundedStuckSource) Timeout() time.Duration { return s.timeout }

func newStuck() *stuckSource {
	m := newMem()
	m.accounts["a@example.com"] = &Account{Address: "a@example.com", Active: true}
	return &stuckSource{memSource: m, release: make(chan struct{}), started: make(chan struct{}, 100)}
}

// TestCacheWaitersStopAtTheirDeadline: callers sharing a lookup that is
// stuck each stop waiting at their own deadline, or, without one, at the
// source's declared timeout (plus flightGrace), as "try later".
func TestCacheWaitersStopAtTheirDeadline(t *testing.T) {
	const waiters = 20
	// Generous: the bounds asserted are 200 ms plus the grace; a loaded
	// machine may add scheduling delay, never seconds.
	const margin = 2 * time.Second
	tests := []struct {
		name     string
		source   func(*stuckSource) AccountSource
		deadline time.Duration // of each caller's context; 0: none
		want     time.Duration
	}{
		{"own deadline", func(s *stuckSource) AccountSource { return s }, 200 * time.Millisecond, 200 * time.Millisecond},
		{"source timeout", func(s *stuckSource) AccountSource { s.timeout = 200 * time.Millisecond; return boundedStuckSource{s} },
			0, 200*time.Millisecond + flightGrace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStuck()
			defer close(s.release)
			c := NewCache(tt.source(s), s.memSource, CacheConfig{})
			var wg sync.WaitGroup
			errs := make([]error, waiters)
			took := make([]time.Duration, waiters)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx := context.Background()
					if tt.deadline > 0 {
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, tt.deadline)
						defer cancel()
					}
					t0 := time.Now()
					_, errs[i] = c.Accounts().LookupAccount(ctx, "a@example.com")
					took[i] = time.Since(t0)
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if !Temporary(err) {
					t.Errorf("waiter %d: %v, want ErrUnavailable", i, err)
				}
				if took[i] > tt.want+margin {
					t.Errorf("waiter %d answered after %v, bound %v", i, took[i], tt.want)
				}
			}
			if n := len(s.started); n != 1 {
				t.Errorf("%d backend calls for %d concurrent lookups, want 1", n, waiters)
			}
		})
	}
}

// TestCacheLeaderLeaving: the caller that started a shared lookup hangs
// up; the others still get the answer, and it is cached.
func TestCacheLeaderLeaving(t *testing.T) {
	s := newStuck()
	c := NewCache(s, s.memSource, CacheConfig{})
	leaderCtx, hangUp := context.WithCancel(context.Background())
	leader := make(chan error, 1)
	go func() {
		_, err := c.Accounts().LookupAccount(leaderCtx, "a@example.com")
		leader <- err
	}()
	<-s.started
	other := make(chan error, 1)
	go func() {
		_, err := c.Accounts().LookupAccount(context.Background(), "a@example.com")
		other <- err
	}()
	hangUp()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Errorf("leader after hanging up: %v, want its own cancellation", err)
	}
	close(s.release)
	if err := <-other; err != nil {
		t.Errorf("other caller: %v, want the account", err)
	}
	if _, err := c.Accounts().LookupAccount(context.Background(), "a@example.com"); err != nil {
		t.Errorf("after: %v", err)
	}
	if n := len(s.started); n != 0 {
		t.Errorf("%d more backend calls: the shared answer was not cached", n)
	}
}
