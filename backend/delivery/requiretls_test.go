package delivery_test

import (
	"context"
	"testing"

	"github.com/vmaild/vmaild/backend/delivery"
)

// TestRequireTLSQueued: a REQUIRETLS envelope's remote destinations,
// forwarded ones included, are queued with the mark; without it they are
// not.
func TestRequireTLSQueued(t *testing.T) {
	for _, want := range []bool{true, false} {
		f := newFixture(t, delivery.Config{})
		ctx := context.Background()
		env := delivery.Envelope{From: "sender@remote.test", RequireTLS: want, Recipients: rcpts("team@example.com", "other@remote.test")}
		f.agent.Deliver(ctx, env, newMsg(body))
		items, err := f.queue.List(ctx)
		if err != nil || len(items) == 0 {
			t.Fatalf("queue: %v, %v", items, err)
		}
		for _, it := range items {
			if it.RequireTLS != want {
				t.Errorf("RequireTLS %v: queued item %+v", want, it)
			}
		}
	}
}
