package store

import (
	"context"
	"sync"
)

// EventKind says what changed in a folder; kinds of several events that
// arrive before the watcher looks are ORed together.
type EventKind uint8

const (
	EventNew     EventKind = 1 << iota // messages were added (delivery, APPEND, COPY, MOVE)
	EventExpunge                       // messages were expunged or moved away
	EventFlags                         // flags changed
	EventGone                          // the folder was deleted or renamed
)

// Watcher receives change notifications for one folder from every session
// and delivery of this process. Events are coalesced: a watcher that does
// not look for a while finds one signal with all kinds that happened, and
// a publisher never waits for it. The details come from Folder.Poll.
type Watcher struct {
	hub     *hub
	key     string
	mu      sync.Mutex
	pending EventKind
	c       chan struct{}
}

// C is signalled (capacity one, never closed) when events are pending.
func (w *Watcher) C() <-chan struct{} { return w.c }

// Take returns and clears the pending kinds.
func (w *Watcher) Take() EventKind {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := w.pending
	w.pending = 0
	return k
}

// Wait blocks until events are pending or ctx ends.
func (w *Watcher) Wait(ctx context.Context) (EventKind, error) {
	for {
		if k := w.Take(); k != 0 {
			return k, nil
		}
		select {
		case <-w.c:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Close stops the notifications; it is safe to call twice.
func (w *Watcher) Close() { w.hub.remove(w) }

func (w *Watcher) notify(k EventKind) {
	w.mu.Lock()
	w.pending |= k
	w.mu.Unlock()
	select {
	case w.c <- struct{}{}:
	default: // already signalled; the kinds are merged above
	}
}

// hub routes events by folder directory.
type hub struct {
	mu       sync.Mutex
	watchers map[string]map[*Watcher]struct{}
}

func (h *hub) add(key string) *Watcher {
	w := &Watcher{hub: h, key: key, c: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.watchers == nil {
		h.watchers = make(map[string]map[*Watcher]struct{})
	}
	set := h.watchers[key]
	if set == nil {
		set = make(map[*Watcher]struct{})
		h.watchers[key] = set
	}
	set[w] = struct{}{}
	return w
}

func (h *hub) remove(w *Watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if set := h.watchers[w.key]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(h.watchers, w.key)
		}
	}
}

// publish never blocks on a watcher: notify is a non-blocking send.
func (h *hub) publish(key string, k EventKind) {
	if k == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers[key] {
		w.notify(k)
	}
}

// publishTree notifies the watchers of dir and of its Maildir++ children.
func (h *hub) publishTree(dir string, k EventKind) {
	h.mu.Lock()
	var ws []*Watcher
	for key, set := range h.watchers {
		if key == dir || len(key) > len(dir) && key[:len(dir)+1] == dir+"." {
			for w := range set {
				ws = append(ws, w)
			}
		}
	}
	h.mu.Unlock()
	for _, w := range ws {
		w.notify(k)
	}
}
