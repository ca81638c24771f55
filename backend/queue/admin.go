package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"
)

// Item is a queued message as the admin commands show it.
type Item struct {
	ID      string    `json:"id"`
	From    string    `json:"from"` // "" is the null sender
	Created time.Time `json:"created"`
	Size    int64     `json:"size"`
	// Bounce is set on delivery status notifications this queue made.
	Bounce bool `json:"bounce,omitempty"`
	// RequireTLS: the message carries REQUIRETLS (RFC 8689).
	RequireTLS bool        `json:"requiretls,omitempty"`
	Recipients []Recipient `json:"recipients"`
	// NextAttempt is the earliest next attempt of a pending recipient,
	// zero when none is pending.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Held is the admin's hold (Hold): nothing is attempted until Unhold.
	Held bool `json:"held,omitempty"`
}

// Stats are counters for metrics. Items and Pending are current values;
// the rest count since New.
type Stats struct {
	Items     int // messages in the queue
	Pending   int // recipients still to deliver
	Running   int // transactions in flight
	Enqueued  int64
	Delivered int64 // recipients
	Deferred  int64 // recipient attempts that will be retried
	Failed    int64 // recipients failed permanently
}

func (it *item) snapshot() Item {
	out := Item{ID: it.ID, From: it.From, Created: it.Created, Size: it.Size, Bounce: it.Bounce, RequireTLS: it.RequireTLS, Recipients: slices.Clone(it.rcpts), Held: it.onHold}
	for _, r := range it.rcpts {
		if r.State == Pending && (out.NextAttempt.IsZero() || r.NextAttempt.Before(out.NextAttempt)) {
			out.NextAttempt = r.NextAttempt
		}
	}
	return out
}

// List returns every queued item, oldest first.
func (q *Queue) List(ctx context.Context) ([]Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q.mu.Lock()
	out := make([]Item, 0, len(q.items))
	for _, it := range q.items {
		out = append(out, it.snapshot())
	}
	q.mu.Unlock()
	slices.SortFunc(out, func(a, b Item) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Get returns one item, or an error wrapping ErrNotFound.
func (q *Queue) Get(ctx context.Context, id string) (Item, error) {
	if err := ctx.Err(); err != nil {
		return Item{}, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	it, ok := q.items[id]
	if !ok {
		return Item{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return it.snapshot(), nil
}

// Message returns the message of a queued item (for `queue show`). The
// caller closes it.
func (q *Queue) Message(ctx context.Context, id string) (io.ReadCloser, error) {
	it, err := q.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	f, sr, err := q.spool.open(it.ID, it.Size)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{sr, f}, nil
}

// Flush makes the pending recipients of one item (id != "") or of every
// item due now, and retries unreported bounces. Items on hold are left
// alone; one named by id is refused with ErrHeld.
func (q *Queue) Flush(ctx context.Context, id string) error {
	return q.makeDue(ctx, id, "")
}

// Retry makes the pending recipients of one item due now, or only rcpt
// when it is not "" (the item's other pending recipients at rcpt's domain
// go with it: one transaction per domain). An item on hold is refused
// with ErrHeld: release it first.
func (q *Queue) Retry(ctx context.Context, id, rcpt string) error {
	if id == "" {
		return fmt.Errorf("%w: retry needs an id", ErrNotFound)
	}
	return q.makeDue(ctx, id, rcpt)
}

func (q *Queue) makeDue(ctx context.Context, id, rcpt string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := time.Now()
	q.mu.Lock()
	var items []*item
	if id != "" {
		it, ok := q.items[id]
		if !ok {
			q.mu.Unlock()
			return fmt.Errorf("%w: %q", ErrNotFound, id)
		}
		if it.onHold {
			q.mu.Unlock()
			return fmt.Errorf("%w: %s", ErrHeld, id)
		}
		if rcpt != "" && !slices.ContainsFunc(it.rcpts, func(r Recipient) bool { return r.Addr == rcpt && r.State == Pending }) {
			q.mu.Unlock()
			return fmt.Errorf("%w: %s has no pending recipient %q", ErrNotFound, id, rcpt)
		}
		items = []*item{it}
	} else {
		for _, it := range q.items {
			items = append(items, it)
		}
	}
	var settle []*item
	for _, it := range items {
		if it.onHold {
			continue
		}
		for i := range it.rcpts {
			if it.rcpts[i].State == Pending && (rcpt == "" || it.rcpts[i].Addr == rcpt) {
				it.rcpts[i].NextAttempt = now
			}
		}
		if q.started {
			q.scheduleLocked(it)
		}
		if it.inflight == 0 && it.needsSettle() {
			settle = append(settle, it)
		}
	}
	started := q.started && !q.closing
	q.mu.Unlock()
	q.poke()
	if started {
		for _, it := range settle {
			q.settle(it)
		}
	}
	return nil
}

// Hold stops delivery attempts for an item until Unhold, as Postfix's
// `postsuper -h` does; the hold is kept in the spool across restarts. An
// attempt already in flight finishes. A held item still expires (MaxAge)
// at its first attempt after the release.
func (q *Queue) Hold(ctx context.Context, id string) error {
	return q.setHold(ctx, id, true)
}

// Unhold ends the admin's hold: the item's recipients are attempted at
// their planned times (now, when those have passed).
func (q *Queue) Unhold(ctx context.Context, id string) error {
	return q.setHold(ctx, id, false)
}

func (q *Queue) setHold(ctx context.Context, id string, on bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.mu.Lock()
	it, ok := q.items[id]
	if !ok || it.deleted || it.done {
		q.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	it.onHold = on
	q.mu.Unlock()
	q.persist(it)
	q.mu.Lock()
	if !on && q.started && !q.closing {
		q.scheduleLocked(it)
	}
	q.mu.Unlock()
	q.poke()
	q.log.Info("queue item hold", "queue_id", id, "held", on)
	return nil
}

// Delete removes an item from the queue without bouncing it. A delivery
// already in flight for it finishes but is not recorded.
func (q *Queue) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !validID(id) {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	q.mu.Lock()
	it, ok := q.items[id]
	q.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	it.persistMu.Lock()
	defer it.persistMu.Unlock()
	q.mu.Lock()
	if it.deleted || it.done {
		q.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	it.deleted = true
	delete(q.items, id)
	q.mu.Unlock()
	if err := q.spool.remove(id); err != nil {
		return err
	}
	q.log.Info("queue item deleted", "queue_id", id)
	return nil
}

// Len is the number of queued messages.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Stats returns the queue's counters.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.stats
	s.Items = len(q.items)
	s.Running = q.running
	for _, it := range q.items {
		for _, r := range it.rcpts {
			if r.State == Pending {
				s.Pending++
			}
		}
	}
	return s
}

// Inspect lists the items of a spool without owning it: for `vmaild queue
// list` while the daemon holds the lock, or on a copy of a spool. It never
// changes anything; unreadable items are left out (the owning Queue
// quarantines them) and reported in the error, with the readable ones.
func Inspect(ctx context.Context, dir string) ([]Item, error) {
	s := &spool{dir: dir}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("queue: inspect: %w", err)
	}
	var out []Item
	var errs []error
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		id, ok := strings.CutSuffix(e.Name(), msgSuffix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		_, err := os.Lstat(s.statePath(id))
		it, err := s.loadItem(id, err == nil)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // finished while we looked
			}
			errs = append(errs, fmt.Errorf("%s: %w", e.Name(), err))
			continue
		}
		out = append(out, it.snapshot())
	}
	slices.SortFunc(out, func(a, b Item) int { return strings.Compare(a.ID, b.ID) })
	return out, errors.Join(errs...)
}
