// Package loadburst runs many calls at the same moment, as a mail server
// under load sees them, and checks that each answered within a bound and
// as expected: the shared part of the tests that bound directory waits
// (userdb, userdb/sql and the running daemon), so they time and judge
// their bursts the same way.
package loadburst

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/userdb"
)

// Result is one call's answer and how long it took.
type Result struct {
	Who  string // names the call in reports: a user, an operation
	Err  error
	Took time.Duration
}

// Run calls f(ctx, i) for every i of names, all released at the same
// moment so that they meet the directory together, and collects the
// answers in the order of names.
func Run(names []string, f func(ctx context.Context, i int) error) []Result {
	res := make([]Result, len(names))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, who := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			err := f(context.Background(), i)
			res[i] = Result{Who: who, Err: err, Took: time.Since(t0)}
		}()
	}
	close(start)
	wg.Wait()
	return res
}

// Check fails the test for every answer later than bound and every one
// that judge refuses (judge says why, "" when the answer is right); it
// returns the slowest answer.
func Check(t testing.TB, what string, res []Result, bound time.Duration, judge func(err error) string) time.Duration {
	t.Helper()
	var slowest time.Duration
	for _, r := range res {
		slowest = max(slowest, r.Took)
		if r.Took > bound {
			t.Errorf("%s %s: answered after %v, bound %v (%v)", what, r.Who, r.Took.Round(time.Millisecond), bound, r.Err)
		}
		if why := judge(r.Err); why != "" {
			t.Errorf("%s %s: %s", what, r.Who, why)
		}
	}
	return slowest
}

// Served counts the answers that succeeded.
func Served(res []Result) int {
	n := 0
	for _, r := range res {
		if r.Err == nil {
			n++
		}
	}
	return n
}

// NoError is the judge of calls that check their own answers: any error
// is wrong.
func NoError(err error) string {
	if err != nil {
		return err.Error()
	}
	return ""
}

// TryLater is the judge of a directory outage: only "try later" is right.
// A "no" would bounce mail or refuse a right password, and a success
// means the outage was not one.
func TryLater(err error) string {
	switch {
	case err == nil:
		return "succeeded with the directory down"
	case !userdb.Temporary(err):
		return fmt.Sprintf("%v, want only ErrUnavailable", err)
	case errors.Is(err, userdb.ErrBadCredentials) || errors.Is(err, userdb.ErrNotFound) || errors.Is(err, userdb.ErrDisabled):
		return fmt.Sprintf("%v: a \"no\" during an outage", err)
	}
	return ""
}

// TryLaterOrServed is the judge of a directory that is slow, not down:
// it may still serve some calls, and the rest must be "try later".
func TryLaterOrServed(err error) string {
	if err == nil {
		return ""
	}
	return TryLater(err)
}

// Outage starts an outage with fail and returns the function that ends it
// with restore. The end comes once, at that call or when the test ends,
// so a test that stops half way does not leave a frozen or stopped server
// to the tests after it.
func Outage(t testing.TB, fail, restore func()) (end func()) {
	t.Helper()
	fail()
	end = sync.OnceFunc(restore)
	t.Cleanup(end)
	return end
}
