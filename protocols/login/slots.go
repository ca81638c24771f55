package login

import (
	"container/list"
	"context"
	"net/netip"
	"sync"
)

// slots bounds how many password verifications run at once. A login that
// finds every slot taken queues, first come first served, unless the
// queue is full, or holds its client network's share of it: then it is
// refused with ErrBusy at once, which bounds both the memory the
// verifications hold and how long anyone waits (the queue's length times
// one verification). Logins from trusted pairs queue apart, within the
// same bound, and are served first, so an attack that fills the queue
// does not keep account owners out.
type slots struct {
	mu            sync.Mutex
	free          int
	size          int
	maxWaiting    int
	maxPerNetwork int
	queue         list.List // of *waiter: untrusted logins
	priority      list.List // of *waiter: trusted logins
	perNetwork    map[netip.Prefix]int
	refused       uint64
	peakBusy      int
	peakWaiting   int
}

type waiter struct {
	ready   chan struct{}
	granted bool // set under mu when a slot is handed over
	network netip.Prefix
	trusted bool
}

func newSlots(size, maxWaiting, maxPerNetwork int) *slots {
	return &slots{free: size, size: size, maxWaiting: maxWaiting, maxPerNetwork: maxPerNetwork,
		perNetwork: map[netip.Prefix]int{}}
}

// acquire takes a slot for a login from network, waiting while ctx lasts.
// The returned func gives it back, handing it to the next waiter.
func (s *slots) acquire(ctx context.Context, network netip.Prefix, trusted bool) (func(), error) {
	s.mu.Lock()
	if s.free > 0 && s.queue.Len() == 0 && s.priority.Len() == 0 {
		s.free--
		s.peakBusy = max(s.peakBusy, s.size-s.free)
		s.mu.Unlock()
		return s.release, nil
	}
	q := &s.queue
	if trusted {
		q = &s.priority
	}
	if q.Len() >= s.maxWaiting || (!trusted && s.perNetwork[network] >= s.maxPerNetwork) {
		s.refused++
		s.mu.Unlock()
		return nil, ErrBusy
	}
	w := &waiter{ready: make(chan struct{}), network: network, trusted: trusted}
	el := q.PushBack(w)
	if !trusted {
		s.perNetwork[network]++
	}
	s.peakWaiting = max(s.peakWaiting, s.queue.Len()+s.priority.Len())
	s.mu.Unlock()

	select {
	case <-w.ready:
		return s.release, nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	if w.granted {
		// The slot arrived as the client left: pass it on.
		s.mu.Unlock()
		s.release()
		return nil, ctx.Err()
	}
	q.Remove(el)
	s.unqueued(w)
	s.mu.Unlock()
	return nil, ctx.Err()
}

// release gives a slot back: to the first trusted waiter, else to the
// first other one, else to the pool.
func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := &s.priority
	if q.Len() == 0 {
		q = &s.queue
	}
	el := q.Front()
	if el == nil {
		s.free++
		return
	}
	w := q.Remove(el).(*waiter)
	s.unqueued(w)
	w.granted = true
	close(w.ready)
}

// unqueued forgets a waiter's share of its network's queue; s.mu is held.
func (s *slots) unqueued(w *waiter) {
	if w.trusted {
		return
	}
	if s.perNetwork[w.network]--; s.perNetwork[w.network] <= 0 {
		delete(s.perNetwork, w.network)
	}
}

func (s *slots) stats(st *Stats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Verifying = s.size - s.free
	st.Waiting = s.queue.Len() + s.priority.Len()
	st.Refused = s.refused
	st.PeakVerifying = s.peakBusy
	st.PeakWaiting = s.peakWaiting
}
