package queue

import (
	"bytes"
	"container/heap"
	"context"
	"slices"
	"strings"
	"time"
)

// A job is one delivery attempt: the pending recipients of one item at
// one destination domain, in one SMTP transaction per host.
type job struct {
	it     *item
	domain string
	dest   string // concurrency key: the domain, or the smarthost
}

// timer says "look at this item's recipients at this domain then". Timers
// are not removed when plans change; a stale one is dropped when it fires.
type timer struct {
	at     time.Time
	it     *item
	domain string
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = timer{}
	*h = old[:len(old)-1]
	return t
}

// scheduleLocked adds a timer for each domain of the item with pending
// recipients. Caller holds q.mu.
func (q *Queue) scheduleLocked(it *item) {
	if it.held || it.onHold {
		return // the delivery agent is on it until Release, the admin until Unhold
	}
	next := make(map[string]time.Time)
	for _, r := range it.rcpts {
		if r.State != Pending {
			continue
		}
		if t, ok := next[r.domain]; !ok || r.NextAttempt.Before(t) {
			next[r.domain] = r.NextAttempt
		}
	}
	for d, t := range next {
		heap.Push(&q.timers, timer{at: t, it: it, domain: d})
	}
}

func (q *Queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *Queue) dest(domain string) string {
	if q.cfg.Smarthost != nil && (q.cfg.LocalDomain == nil || !q.cfg.LocalDomain(domain)) {
		return "smarthost " + q.cfg.Smarthost.Addr
	}
	return domain
}

// loop turns due timers into ready jobs and starts jobs while workers and
// per-destination slots are free.
func (q *Queue) loop() {
	defer close(q.loopDone)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		q.mu.Lock()
		next := q.promoteLocked(time.Now())
		q.dispatchLocked()
		q.mu.Unlock()
		var fire <-chan time.Time
		if !next.IsZero() {
			t.Reset(time.Until(next))
			fire = t.C
		}
		select {
		case <-q.stop:
			return
		case <-q.wake:
		case <-fire:
		}
	}
}

// promoteLocked moves jobs whose time has come to the ready lists and
// returns when the next timer fires (zero: none).
func (q *Queue) promoteLocked(now time.Time) time.Time {
	for q.timers.Len() > 0 {
		t := q.timers[0]
		if t.at.After(now) {
			return t.at
		}
		heap.Pop(&q.timers)
		it := t.it
		if it.deleted || it.done || it.onHold || it.busy[t.domain] || !it.dueAt(t.domain, now) {
			continue
		}
		if it.busy == nil {
			it.busy = make(map[string]bool)
		}
		it.busy[t.domain] = true
		j := &job{it: it, domain: t.domain, dest: q.dest(t.domain)}
		if len(q.ready[j.dest]) == 0 {
			q.order = append(q.order, j.dest)
		}
		q.ready[j.dest] = append(q.ready[j.dest], j)
	}
	return time.Time{}
}

// dueAt reports whether a pending recipient at domain is due.
func (it *item) dueAt(domain string, now time.Time) bool {
	for _, r := range it.rcpts {
		if r.State == Pending && r.domain == domain && !r.NextAttempt.After(now) {
			return true
		}
	}
	return false
}

// dispatchLocked starts ready jobs round robin over destinations, so one
// busy domain cannot starve the others.
func (q *Queue) dispatchLocked() {
	if q.closing {
		return
	}
	for q.running < q.cfg.Workers && len(q.order) > 0 {
		started := false
		for i := 0; i < len(q.order) && q.running < q.cfg.Workers; {
			dest := q.order[i]
			jobs := q.ready[dest]
			if len(jobs) == 0 {
				delete(q.ready, dest)
				q.order = slices.Delete(q.order, i, i+1)
				continue
			}
			i++
			if q.perDest[dest] >= q.cfg.PerDomain {
				continue
			}
			j := jobs[0]
			jobs[0] = nil
			q.ready[dest] = jobs[1:]
			q.running++
			q.perDest[dest]++
			j.it.inflight++
			q.inflight.Add(1)
			started = true
			go q.runJob(j)
		}
		if !started {
			return
		}
	}
}

func (q *Queue) runJob(j *job) {
	defer q.inflight.Done()
	ctx := q.jobCtx
	it := j.it
	start := time.Now()

	q.mu.Lock()
	var rcpts []string
	for _, r := range it.rcpts {
		if r.State == Pending && r.domain == j.domain {
			rcpts = append(rcpts, r.Addr)
		}
	}
	deleted := it.deleted
	q.mu.Unlock()

	var a attempt
	switch {
	case deleted || len(rcpts) == 0:
		a = attempt{results: map[string]reply{}}
	case start.After(it.Created.Add(q.cfg.MaxAge)):
		// Too old already (the queue was down): do not try again.
		r := reply{Perm: true, Status: "4.4.7", Text: "message expired in queue before delivery"}
		a = attempt{results: make(map[string]reply, len(rcpts))}
		for _, rc := range rcpts {
			a.results[rc] = r
		}
	default:
		a = q.deliver(ctx, it, j.domain, rcpts)
	}
	q.finish(ctx, j, a, start)
}

// finish records a job's results, plans retries, and reports failures
// once nothing else of the item is in flight.
func (q *Queue) finish(ctx context.Context, j *job, a attempt, start time.Time) {
	it := j.it
	now := time.Now()
	aborted := ctx.Err() != nil
	var nOK, nTemp, nPerm int
	var last reply

	q.mu.Lock()
	for i := range it.rcpts {
		r := &it.rcpts[i]
		res, ok := a.results[r.Addr]
		if !ok || r.State != Pending || r.domain != j.domain {
			continue
		}
		last = res
		if aborted && !res.OK && !res.Perm {
			// Cut short by shutdown: not the remote's fault, not an
			// attempt; retry first thing after restart.
			r.NextAttempt = now
			continue
		}
		r.LastAttempt, r.LastReply, r.ReplyCode, r.Status, r.RemoteMTA = now, oneLine(res.String()), res.Code, res.Status, oneLine(res.Host)
		r.TLSPolicy = a.policy
		switch {
		case res.OK:
			r.State = Delivered
			r.NextAttempt = time.Time{}
			nOK++
			q.stats.Delivered++
		case res.Perm:
			r.Attempts++
			r.State = Failed
			r.NextAttempt = time.Time{}
			nPerm++
			q.stats.Failed++
		default:
			r.Attempts++
			next := now.Add(q.cfg.backoff(r.Attempts))
			if next.After(it.Created.Add(q.cfg.MaxAge)) {
				r.State = Failed
				r.NextAttempt = time.Time{}
				r.LastReply = "gave up after " + strings.TrimSpace(time.Since(it.Created).Round(time.Second).String()) + " in queue: " + r.LastReply
				if !strings.HasPrefix(r.Status, "4.") {
					r.Status = "4.4.7"
				}
				nPerm++
				q.stats.Failed++
				continue
			}
			r.NextAttempt = next
			nTemp++
			q.stats.Deferred++
		}
	}
	delete(it.busy, j.domain)
	// One timer for what is still pending here: deferred recipients, and
	// any the attempt did not get to.
	var next time.Time
	for _, r := range it.rcpts {
		if r.State == Pending && r.domain == j.domain && (next.IsZero() || r.NextAttempt.Before(next)) {
			next = r.NextAttempt
		}
	}
	if !next.IsZero() {
		heap.Push(&q.timers, timer{at: next, it: it, domain: j.domain})
	}
	it.inflight--
	q.running--
	if q.perDest[j.dest]--; q.perDest[j.dest] <= 0 {
		delete(q.perDest, j.dest)
	}
	settle := it.inflight == 0 && it.needsSettle()
	skip := it.deleted || it.done
	q.mu.Unlock()
	q.poke()

	if skip {
		return
	}
	q.log.Info("delivery attempt",
		"queue_id", it.ID, "domain", j.domain, "relay", a.relay, "tls", a.tls, "tls_policy", a.policy, "requiretls", it.RequireTLS,
		"delivered", nOK, "deferred", nTemp, "failed", nPerm,
		"reply", last.String(), "aborted", aborted, "duration", time.Since(start).Round(time.Millisecond))
	if settle {
		q.settle(it)
	} else {
		q.persist(it)
	}
}

// persist writes the item's recipient state.
func (q *Queue) persist(it *item) {
	it.persistMu.Lock()
	defer it.persistMu.Unlock()
	q.mu.Lock()
	if it.deleted || it.done {
		q.mu.Unlock()
		return
	}
	snap, onHold := slices.Clone(it.rcpts), it.onHold
	q.mu.Unlock()
	if err := q.spool.saveState(it.ID, snap, onHold); err != nil {
		// The old state stays: at worst recipients are tried again.
		q.log.Error("queue: cannot save state", "queue_id", it.ID, "err", err)
	}
}

// settle sends one bounce for the failures not yet reported, and removes
// the item when no recipient is pending.
func (q *Queue) settle(it *item) {
	it.persistMu.Lock()
	defer it.persistMu.Unlock()
	q.mu.Lock()
	if it.deleted || it.done {
		q.mu.Unlock()
		return
	}
	var failed []Recipient
	pending := false
	for _, r := range it.rcpts {
		switch {
		case r.State == Pending:
			pending = true
		case r.State == Failed && !r.Notified:
			failed = append(failed, r)
		}
	}
	q.mu.Unlock()

	if len(failed) > 0 {
		if it.From == "" {
			// RFC 5321 6.1: never bounce a bounce.
			for _, r := range failed {
				q.log.Warn("queue: no bounce for null sender", "queue_id", it.ID, "rcpt", r.Addr, "status", r.Status, "reply", r.LastReply)
			}
		} else {
			to := it.From
			if q.cfg.BounceTo != nil {
				if t := q.cfg.BounceTo(it.From); t != "" {
					to = t
				}
			}
			dsn, err := q.buildDSN(it, to, failed)
			var id string
			if err == nil {
				bctx := context.Background()
				if it.RequireTLS {
					// RFC 8689 section 5: the bounce quotes the headers
					// the sender wanted protected; it gets the same care.
					bctx = WithRequireTLS(bctx)
				}
				id, err = q.enqueue(bctx, "", []string{to}, bytes.NewReader(dsn), int64(len(dsn)), true)
			}
			if err != nil {
				// Still unreported: tried again at the next settle
				// (restart or Flush).
				q.log.Error("queue: cannot queue bounce", "queue_id", it.ID, "to", to, "err", err)
				if pending {
					q.saveLocked(it)
				}
				return
			}
			q.log.Info("bounce queued", "queue_id", it.ID, "bounce_id", id, "to", to, "sender", it.From, "nrcpt", len(failed))
		}
		q.mu.Lock()
		for i := range it.rcpts {
			if it.rcpts[i].State == Failed {
				it.rcpts[i].Notified = true
			}
		}
		q.mu.Unlock()
	}
	if pending || len(failed) > 0 {
		// Record the bounce before removing, so a failed removal cannot
		// bounce twice after a restart.
		q.saveLocked(it)
	}
	if pending {
		return
	}
	if err := q.spool.remove(it.ID); err != nil {
		q.log.Error("queue: cannot remove finished item", "queue_id", it.ID, "err", err)
	}
	q.mu.Lock()
	it.done = true
	delete(q.items, it.ID)
	q.mu.Unlock()
	q.log.Info("queue item done", "queue_id", it.ID)
}

// saveLocked is persist for a caller that holds it.persistMu.
func (q *Queue) saveLocked(it *item) {
	q.mu.Lock()
	snap, onHold := slices.Clone(it.rcpts), it.onHold
	q.mu.Unlock()
	if err := q.spool.saveState(it.ID, snap, onHold); err != nil {
		q.log.Error("queue: cannot save state", "queue_id", it.ID, "err", err)
	}
}
