package queue

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

// TestAdminHold: a held item is not attempted (by its schedule, by Flush,
// by Retry) and stays held across a restart, as the spool records it;
// Unhold and Retry of one recipient then deliver that recipient alone.
func TestAdminHold(t *testing.T) {
	d := queuetest.NewDNS(t)
	d.A("remote.test", "127.0.0.1")
	d.A("other.test", "127.0.0.1")
	var down atomic.Bool
	down.Store(true)
	sink := queuetest.NewSink(t, queuetest.SinkOptions{Rcpt: func(string) error {
		if down.Load() {
			return err451
		}
		return nil
	}})
	cfg, _ := testConfig(t, d)
	cfg.Port = sink.Port
	cfg.Retry = []time.Duration{time.Hour} // only Flush and Retry try again
	ctx := context.Background()

	q := startQueue(t, cfg)
	id, err := q.EnqueueBytes(ctx, "alice@local.test", []string{"a@remote.test", "b@other.test"}, testMessage("held", 100))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first attempt", func() bool {
		it, err := q.Get(ctx, id)
		return err == nil && it.Recipients[0].Attempts == 1 && it.Recipients[1].Attempts == 1
	})
	if err := q.Hold(ctx, id); err != nil {
		t.Fatal(err)
	}
	if it, _ := q.Get(ctx, id); !it.Held {
		t.Fatalf("after Hold: %+v", it)
	}
	down.Store(false)
	if err := q.Retry(ctx, id, "a@remote.test"); !errors.Is(err, ErrHeld) {
		t.Errorf("Retry of a held item: %v, want ErrHeld", err)
	}
	if err := q.Hold(ctx, "0123456789abcdef0123456789abcdef"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Hold of an unknown id: %v", err)
	}
	// A canary flushed with it goes out; the held item does not.
	canary, err := q.EnqueueBytes(ctx, "alice@local.test", []string{"canary@remote.test"}, testMessage("canary", 100))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Flush(ctx, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the canary", func() bool { _, err := q.Get(ctx, canary); return errors.Is(err, ErrNotFound) })
	if err := q.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	// The hold is in the spool: Inspect and a new queue see it.
	items, err := Inspect(ctx, cfg.Dir)
	if err != nil || len(items) != 1 || !items[0].Held {
		t.Fatalf("Inspect after restart: %+v, %v", items, err)
	}
	q = startQueue(t, cfg)
	canary, err = q.EnqueueBytes(ctx, "alice@local.test", []string{"canary@remote.test"}, testMessage("canary 2", 100))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Flush(ctx, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second canary", func() bool { _, err := q.Get(ctx, canary); return errors.Is(err, ErrNotFound) })
	it, err := q.Get(ctx, id)
	if err != nil || !it.Held || it.Recipients[0].Attempts != 1 || it.Recipients[1].Attempts != 1 {
		t.Fatalf("held item after restart and flush: %+v, %v", it, err)
	}
	for _, m := range sink.Messages() {
		for _, r := range m.Rcpts {
			if !strings.HasPrefix(r, "canary@") {
				t.Fatalf("held recipient %s delivered", r)
			}
		}
	}

	// Released, it waits for its planned retry (an hour); Retry of one
	// recipient sends that one now (with any others pending at its
	// domain, which travel in one transaction).
	if err := q.Unhold(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := q.Retry(ctx, id, "a@remote.test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a delivered", func() bool {
		it, err := q.Get(ctx, id)
		return err == nil && it.Recipients[0].State == Delivered
	})
	it, _ = q.Get(ctx, id)
	if it.Held || it.Recipients[1].State != Pending || it.Recipients[1].Attempts != 1 {
		t.Errorf("after Unhold and Retry of a: %+v", it)
	}
	if err := q.Retry(ctx, id, "a@remote.test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Retry of a delivered recipient: %v, want ErrNotFound", err)
	}
	if err := q.Retry(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the item done", func() bool { _, err := q.Get(ctx, id); return errors.Is(err, ErrNotFound) })
}
