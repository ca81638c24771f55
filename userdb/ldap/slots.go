package ldap

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"time"
)

// slots bounds how many connections a pool has in use or idle. A caller
// beyond that waits for a free slot, and waiting callers are served
// earliest deadline first, not in arrival order: a login or a recipient
// lookup that needs several requests keeps its place with the deadline
// it started with, so under a slow directory whole operations finish
// instead of every one of them making a little progress and all running
// out of time together.
type slots struct {
	mu      sync.Mutex
	free    int
	waiters waitQueue
	seq     uint64 // arrival order, to break ties between equal deadlines
}

func newSlots(n int) *slots { return &slots{free: n} }

// acquire takes a slot, waiting at most until ctx ends.
func (s *slots) acquire(ctx context.Context) error {
	s.mu.Lock()
	if s.free > 0 && len(s.waiters) == 0 {
		s.free--
		s.mu.Unlock()
		return nil
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(100 * 365 * 24 * time.Hour)
	}
	s.seq++
	w := &waiter{deadline: dl, seq: s.seq, ready: make(chan struct{})}
	heap.Push(&s.waiters, w)
	s.mu.Unlock()

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	granted := w.index < 0
	if !granted {
		heap.Remove(&s.waiters, w.index)
	}
	s.mu.Unlock()
	if granted {
		// The slot arrived as ctx ended: pass it on.
		s.release()
	}
	return fmt.Errorf("waiting for a free connection: %w", context.Cause(ctx))
}

// release gives a slot back, to the waiter with the earliest deadline.
func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.waiters) == 0 {
		s.free++
		return
	}
	w := heap.Pop(&s.waiters).(*waiter)
	close(w.ready)
}

type waiter struct {
	deadline time.Time
	seq      uint64
	ready    chan struct{} // closed when the slot is handed over
	index    int           // in the heap; -1 once handed a slot
}

// waitQueue is a heap of waiters, earliest deadline (then arrival) first.
type waitQueue []*waiter

func (q waitQueue) Len() int { return len(q) }
func (q waitQueue) Less(i, j int) bool {
	if !q[i].deadline.Equal(q[j].deadline) {
		return q[i].deadline.Before(q[j].deadline)
	}
	return q[i].seq < q[j].seq
}
func (q waitQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *waitQueue) Push(x any) {
	w := x.(*waiter)
	w.index = len(*q)
	*q = append(*q, w)
}
func (q *waitQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	w.index = -1
	return w
}
