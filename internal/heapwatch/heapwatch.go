// Package heapwatch measures the peak of the Go heap while a test runs a
// burst of work, for tests that state a memory bound.
package heapwatch

import (
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// heapObjects is the heap's live and not yet swept objects: what a burst
// of allocations pushes up, without the runtime's free spans.
const heapObjects = "/memory/classes/heap/objects:bytes"

// Now returns the heap's size in bytes.
func Now() uint64 {
	s := []metrics.Sample{{Name: heapObjects}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Watch samples the heap every half millisecond until Stop.
type Watch struct {
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

// Start begins sampling.
func Start() *Watch {
	w := &Watch{stop: make(chan struct{}), done: make(chan struct{})}
	w.peak.Store(Now())
	go func() {
		defer close(w.done)
		tick := time.NewTicker(500 * time.Microsecond)
		defer tick.Stop()
		for {
			if n := Now(); n > w.peak.Load() {
				w.peak.Store(n)
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// Stop ends sampling and returns the highest heap size seen.
func (w *Watch) Stop() uint64 {
	close(w.stop)
	<-w.done
	return w.peak.Load()
}
