package greylist

import (
	"context"
	"sync"
	"time"
)

// Memory is a Store in the process's memory: for tests, and for a
// server without an SQL directory (entries are lost on restart, which
// only means senders are greylisted once more).
type Memory struct {
	mu sync.Mutex
	m  map[Triplet]Entry
}

// Get implements Store.
func (s *Memory) Get(_ context.Context, t Triplet) (Entry, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[t]
	return e, ok, nil
}

// Put implements Store.
func (s *Memory) Put(_ context.Context, t Triplet, e Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[Triplet]Entry)
	}
	s.m[t] = e
	return nil
}

// Expire implements Store.
func (s *Memory) Expire(_ context.Context, before time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for t, e := range s.m {
		if e.LastSeen.Before(before) {
			delete(s.m, t)
			n++
		}
	}
	return n, nil
}
