package smtp

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/protocols/sendlimit"
	"github.com/vmaild/vmaild/userdb"
)

// testClock is the limiter's clock: the window moves only when the test
// says so.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// submit opens an authenticated submission session for user.
func submit(t *testing.T, e *env, user string) *rawClient {
	t.Helper()
	c := dialRaw(t, e.addr)
	c.must("EHLO client.test", "250 ")
	c.startTLS(e.tls)
	c.must("EHLO client.test", "250 ")
	local, _, _ := strings.Cut(user, "@")
	c.must("AUTH PLAIN "+plainIR(user, "secret-"+local), "235 ")
	return c
}

// sendOne runs one transaction to rcpts and returns the reply that ended
// it: MAIL's or a RCPT's when refused, else the reply to the message.
func sendOne(c *rawClient, from string, rcpts ...string) string {
	full := func(r reply) string { return fmt.Sprintf("%d %s", r.code, r.last()) }
	if r := c.cmd("MAIL FROM:<" + from + ">"); r.code != 250 {
		return full(r)
	}
	for _, to := range rcpts {
		if r := c.cmd("RCPT TO:<" + to + ">"); r.code != 250 {
			c.must("RSET", "250 ")
			return full(r)
		}
	}
	c.must("DATA", "354 ")
	c.send(testMessage(from, rcpts[0], "limited", "hi") + ".\r\n")
	r, _ := c.readReply()
	return full(r)
}

// TestSendLimitsOverSubmission: through the submission listener, the
// n+1-th message of the hour gets 450 4.7.1 for that user only; a
// message over the recipients per message gets 452 4.5.3 at the RCPT
// over it; the window moving on (the clock, not a sleep) lets mail
// through again; a transaction given up gives its charge back.
func TestSendLimitsOverSubmission(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	var refused []string
	limiter := sendlimit.New(sendlimit.Config{
		Account: sendlimit.Limits{MessagesPerHour: 3, RecipientsPerMessage: 2},
		Lookup: func(ctx context.Context, acct string) (userdb.SendLimits, userdb.SendLimits, error) {
			if acct == "bob@example.org" {
				// bob's directory entry raises his limit.
				n := int64(5)
				return userdb.SendLimits{MessagesPerHour: &n}, userdb.SendLimits{}, nil
			}
			return userdb.SendLimits{}, userdb.SendLimits{}, nil
		},
		Now: clock.Now,
		Refused: func(r *sendlimit.Refusal) {
			mu.Lock()
			refused = append(refused, r.Key+" "+r.Limit)
			mu.Unlock()
		},
	})
	e := startServer(t, RoleSubmission, false, func(s *Server) { s.SendLimits = limiter })
	alice := submit(t, e, "alice@example.org")
	bob := submit(t, e, "bob@example.org")

	steps := []struct {
		name   string
		c      *rawClient
		from   string
		rcpts  []string
		want   string
		minute time.Duration // clock moves by this before the step
	}{
		{"alice 1", alice, "alice@example.org", []string{"friend@remote.test"}, "250 ", 0},
		{"alice 3 recipients: the third is over", alice, "alice@example.org", []string{"a@remote.test", "b@remote.test", "c@remote.test"}, "452 4.5.3", 0},
		{"alice 2", alice, "alice@example.org", []string{"a@remote.test", "b@remote.test"}, "250 ", 0},
		{"alice 3", alice, "alice@example.org", []string{"friend@remote.test"}, "250 ", 0},
		{"alice 4: over the hour", alice, "alice@example.org", []string{"friend@remote.test"}, "450 4.7.1", 0},
		{"bob unaffected 1", bob, "bob@example.org", []string{"friend@remote.test"}, "250 ", 0},
		{"bob 2", bob, "bob@example.org", []string{"friend@remote.test"}, "250 ", 0},
		{"bob 3", bob, "bob@example.org", []string{"friend@remote.test"}, "250 ", 0},
		{"bob 4 (his own limit is 5)", bob, "bob@example.org", []string{"friend@remote.test"}, "250 ", 0},
		{"alice still over", alice, "alice@example.org", []string{"friend@remote.test"}, "450 4.7.1", 30 * time.Minute},
		{"alice after the window", alice, "alice@example.org", []string{"friend@remote.test"}, "250 ", 150 * time.Minute},
	}
	for _, s := range steps {
		clock.Add(s.minute)
		if got := sendOne(s.c, s.from, s.rcpts...); !strings.HasPrefix(got, s.want) {
			t.Fatalf("%s: %q, want %q", s.name, got, s.want)
		}
	}
	mu.Lock()
	got := strings.Join(refused, ", ")
	mu.Unlock()
	want := "alice@example.org recipients_per_message, alice@example.org messages_per_hour, alice@example.org messages_per_hour"
	if got != want {
		t.Errorf("refusals reported: %s\nwant %s", got, want)
	}
	// Three accepted messages of alice's, one after the window; the
	// refused one with three recipients gave its charge back.
	near := limiter.Near(0)
	for _, u := range near {
		if u.Key == "alice@example.org" && u.Messages != 1 {
			t.Errorf("alice's count after the window: %+v, want 1 message", u)
		}
		if u.Key == "bob@example.org" && (u.Messages != 4 || u.MessagesPerHour != 5 || !u.Overridden) {
			t.Errorf("bob's count: %+v, want 4 of 5 (directory override)", u)
		}
	}
}
