package smtp

import (
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/srs"
)

func withSRS(r *srs.Rewriter) serverOpt { return func(s *Server) { s.SRS = r } }

func testRewriter(t *testing.T, now time.Time) *srs.Rewriter {
	t.Helper()
	r, err := srs.New(srs.Config{Domain: "fwd.example.org", Secrets: []string{"test secret"}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A bounce to an SRS address of ours reaches the original sender, relayed
// for any client since the hash vouches for it; forged, expired and
// malformed ones are refused at RCPT with the reason.
func TestSRSRecipients(t *testing.T) {
	now := time.Now()
	r := testRewriter(t, now)
	remote, _ := r.Forward("Sender.Name@origin.test")
	local, _ := r.Forward("alice@example.org")
	old, _ := testRewriter(t, now.Add(-30*24*time.Hour)).Forward("sender@origin.test")
	other, _ := srs.New(srs.Config{Domain: "fwd.example.org", Secrets: []string{"someone else's"}})
	forged, _ := other.Forward("sender@origin.test")
	srs1, _ := r.Forward("SRS0=abcd=2W=origin.test=x@first.test")

	tests := []struct {
		name, rcpt, want string
		deliverTo        string // the recipient the agent gets
	}{
		{"remote original sender", remote, "250 ", "Sender.Name@origin.test"},
		{"local original sender", local, "250 ", "alice@example.org"},
		{"case smashed by a hop", strings.ToLower(remote), "250 ", "sender.name@origin.test"},
		{"SRS1 goes back to the first forwarder", srs1, "250 ", "SRS0=abcd=2W=origin.test=x@first.test"},
		{"forged", forged, "550 5.7.1 Recipient address rejected: forged SRS address", ""},
		{"expired", old, "550 5.7.1 Recipient address rejected: expired SRS address", ""},
		{"malformed", "SRS0=abcd=2W@fwd.example.org", "550 5.7.1 Recipient address rejected: invalid SRS address", ""},
		{"SRS address of another domain is no bounce of ours", strings.Replace(remote, "@fwd.example.org", "@elsewhere.test", 1), "554 5.7.1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startServer(t, RoleMTA, false, withSRS(r))
			c := dialRaw(t, e.addr)
			c.must("EHLO bouncer.test", "250 ")
			c.must("MAIL FROM:<>", "250 ")
			c.must("RCPT TO:<"+tt.rcpt+">", tt.want)
			if tt.deliverTo == "" {
				c.must("RSET", "250 ")
				if len(e.agent.all()) != 0 {
					t.Fatal("a refused SRS recipient was delivered")
				}
				return
			}
			c.must("DATA", "354")
			c.send(testMessage("MAILER-DAEMON@origin.test", tt.rcpt, "Undelivered Mail", "bounce") + ".\r\n")
			c.expect("250 2.0.0")
			got := e.agent.all()
			if len(got) != 1 || got[0].env.From != "" || len(got[0].env.Recipients) != 1 || got[0].rcpts[0] != tt.deliverTo {
				t.Fatalf("deliveries %+v, want one from <> to %s", got, tt.deliverTo)
			}
		})
	}
}

// Without a Rewriter an SRS address is an ordinary one: relay denied.
func TestSRSOff(t *testing.T) {
	addr, _ := testRewriter(t, time.Now()).Forward("sender@origin.test")
	e := startServer(t, RoleMTA, false)
	c := dialRaw(t, e.addr)
	c.must("EHLO bouncer.test", "250 ")
	c.must("MAIL FROM:<>", "250 ")
	c.must("RCPT TO:<"+addr+">", "554 5.7.1")
}
