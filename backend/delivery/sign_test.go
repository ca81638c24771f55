package delivery_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/backend/delivery"
)

// TestSignRemote: the Sign hook puts its fields on top of what an
// authenticated user sends to remote destinations, once per delivery;
// local copies and unauthenticated mail are left alone, and a failing
// signer queues the mail unsigned.
func TestSignRemote(t *testing.T) {
	for _, tc := range []struct {
		name    string
		user    string
		signErr error
		want    bool
	}{
		{"authenticated", "alice@example.com", nil, true},
		{"not authenticated", "", nil, false},
		{"signer fails", "alice@example.com", errors.New("disk gone"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, delivery.Config{})
			calls := 0
			f.agent.Sign = func(ctx context.Context, env *delivery.Envelope, m delivery.Message) ([]byte, error) {
				calls++
				return []byte("X-Signed: by test\r\n"), tc.signErr
			}
			msg := "From: alice@example.com\r\nTo: x@remote.test, team@example.com\r\n\r\nhi\r\n"
			env := delivery.Envelope{From: "alice@example.com", User: tc.user, Role: delivery.RoleSubmission,
				Recipients: append(rcpts("x@remote.test", "bob@example.com"), delivery.Relay("y@other.test", "y@other.test"))}
			for i, o := range f.agent.Deliver(context.Background(), env, newMsg(msg)) {
				if o.Failed() {
					t.Fatalf("rcpt %d: %v", i, o)
				}
			}
			if tc.user != "" && calls != 1 {
				t.Errorf("Sign called %d times, want once", calls)
			}
			items, err := f.queue.List(context.Background())
			if err != nil || len(items) != 1 {
				t.Fatalf("queue: %v %v", items, err)
			}
			rc, err := f.queue.Message(context.Background(), items[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if signed := strings.HasPrefix(string(got), "X-Signed: by test\r\nFrom: alice@example.com\r\n"); signed != tc.want {
				t.Errorf("queued message signed %v, want %v:\n%s", signed, tc.want, got)
			}
			if !strings.HasSuffix(string(got), "\r\n\r\nhi\r\n") {
				t.Errorf("queued message body: %q", got)
			}
			for _, m := range f.inbox(t, "bob@example.com") {
				if strings.Contains(m, "X-Signed") {
					t.Error("the local copy was signed")
				}
			}
		})
	}
}

// TestSignReply: a reply a filter writes (a vacation notice) is queued
// signed in the name of the mailbox owner it answers for, whoever sent
// the message it answers.
func TestSignReply(t *testing.T) {
	f := newFixture(t, delivery.Config{})
	var signedFor []string
	f.agent.Sign = func(ctx context.Context, env *delivery.Envelope, m delivery.Message) ([]byte, error) {
		signedFor = append(signedFor, env.User)
		return []byte("X-Signed: by test\r\n"), nil
	}
	reply := "From: bob@example.com\r\nTo: x@remote.test\r\nAuto-Submitted: auto-replied\r\n\r\naway\r\n"
	f.agent.Filters = []delivery.Filter{delivery.FilterFunc(func(_ context.Context, m *delivery.Mail, d *delivery.Decision) error {
		d.Replies = append(d.Replies, delivery.Reply{To: "x@remote.test", Message: []byte(reply)})
		return nil
	})}
	env := delivery.Envelope{From: "x@remote.test", Role: delivery.RoleMTA, Recipients: rcpts("bob@example.com")}
	for i, o := range f.agent.Deliver(context.Background(), env, newMsg("From: x@remote.test\r\n\r\nhi\r\n")) {
		if o.Failed() {
			t.Fatalf("rcpt %d: %v", i, o)
		}
	}
	if len(signedFor) != 1 || signedFor[0] != "bob@example.com" {
		t.Fatalf("Sign called for %q, want once for bob@example.com", signedFor)
	}
	items, err := f.queue.List(context.Background())
	if err != nil || len(items) != 1 {
		t.Fatalf("queue: %v %v", items, err)
	}
	rc, err := f.queue.Message(context.Background(), items[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if want := "X-Signed: by test\r\n" + reply; string(got) != want {
		t.Errorf("queued reply %q, want %q", got, want)
	}
}
