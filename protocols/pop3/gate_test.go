package pop3

import (
	"io"
	"testing"
	"time"

	"github.com/vmaild/vmaild/protocols/gate"
)

// A client that keeps sending valid commands but never logs in is ended
// at the pre-auth lifetime; a logged-in one is not.
func TestPreAuthLifetime(t *testing.T) {
	const lifetime = time.Second
	b := newMemBackend()
	b.add("bob", "pw", msg1)
	addr := testServer(t, &Server{Backend: b, AllowInsecureAuth: true,
		Gate: &gate.Gate{Limits: gate.Config{PreAuthLifetime: lifetime}}}, false)
	user := dial(t, addr)
	user.login("bob", "pw")
	start := time.Now()
	c := dial(t, addr)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			if _, err := io.WriteString(c.conn, "CAPA\r\n"); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	// Read the capability lists until something else comes.
	var last string
	for time.Since(start) < 20*time.Second {
		if last = c.line(); last != "+OK capability list follows" {
			break
		}
		c.lines()
	}
	took := time.Since(start)
	t.Logf("disconnected after %v (lifetime %v)", took.Round(time.Millisecond), lifetime)
	if last != "-ERR "+gate.LimitPreAuth.Text() {
		t.Fatalf("after %v: %q", took, last)
	}
	if took < lifetime/2 || took > lifetime+5*time.Second {
		t.Errorf("disconnected after %v, lifetime %v", took, lifetime)
	}
	c.expectClosed()
	user.must("NOOP", "+OK")
}
