package loadburst

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/vmaild/vmaild/userdb"
)

// The judges accept exactly what an outage may answer: a "no" wrapped in
// ErrUnavailable is still a "no".
func TestJudges(t *testing.T) {
	tests := []struct {
		name           string
		err            error
		tryLater, slow bool // accepted by TryLater, by TryLaterOrServed
	}{
		{"success", nil, false, true},
		{"try later", userdb.Unavailable("op", errors.New("timeout")), true, true},
		{"no", userdb.ErrBadCredentials, false, false},
		{"unknown", userdb.ErrNotFound, false, false},
		{"disabled under try later", fmt.Errorf("%w: %w", userdb.ErrUnavailable, userdb.ErrDisabled), false, false},
		{"other", errors.New("boom"), false, false},
	}
	for _, tt := range tests {
		if got := TryLater(tt.err) == ""; got != tt.tryLater {
			t.Errorf("%s: TryLater accepts: %v, want %v", tt.name, got, tt.tryLater)
		}
		if got := TryLaterOrServed(tt.err) == ""; got != tt.slow {
			t.Errorf("%s: TryLaterOrServed accepts: %v, want %v", tt.name, got, tt.slow)
		}
	}
}

// Run answers in the order of names, each result named for its call.
func TestRunKeepsOrder(t *testing.T) {
	names := []string{"a", "b", "c", "d"}
	res := Run(names, func(_ context.Context, i int) error {
		if i%2 == 1 {
			return errors.New(names[i])
		}
		return nil
	})
	for i, r := range res {
		if r.Who != names[i] || (i%2 == 1) != (r.Err != nil) {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	if n := Served(res); n != 2 {
		t.Errorf("Served: %d, want 2", n)
	}
}
