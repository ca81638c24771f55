package queue

import (
	"context"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/backend/srs"
)

// TestBounceTo: the DSN for a message forwarded with an SRS sender goes to
// the sender Config.BounceTo names (here the SRS address reversed), not to
// the SRS address; a sender BounceTo leaves alone gets its DSN as before.
func TestBounceTo(t *testing.T) {
	rw, err := srs.New(srs.Config{Domain: "fwd.test", Secrets: []string{"s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	srsFrom, err := rw.Forward("alice@local.test")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, from, want string
	}{
		{"srs", srsFrom, "alice@local.test"},
		{"plain", "bob@local.test", "bob@local.test"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := refusingRemoteConfig(t)
			cfg.BounceTo = func(sender string) string {
				if !rw.Owns(sender) {
					return ""
				}
				orig, err := rw.Reverse(sender)
				if err != nil {
					t.Errorf("reverse %s: %v", sender, err)
				}
				return orig
			}
			var local localSink
			local.install(&cfg, "local.test")
			q := startQueue(t, cfg)
			if _, err := q.EnqueueBytes(context.Background(), tt.from, []string{"nobody@b.test"}, testMessage("forwarded", 100)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the DSN", func() bool { return len(local.messages()) == 1 })
			waitEmpty(t, q)
			b := local.messages()[0]
			if b.From != "" || len(b.Rcpts) != 1 || b.Rcpts[0] != tt.want {
				t.Fatalf("DSN envelope <%s> %v, want <> to %s", b.From, b.Rcpts, tt.want)
			}
			dsn := parseDSN(t, b.Data)
			if got := dsn.header.Get("To"); got != "<"+tt.want+">" {
				t.Errorf("DSN To: %q", got)
			}
			if got := dsn.perRcpt[0].Get("Final-Recipient"); got != "rfc822; nobody@b.test" {
				t.Errorf("Final-Recipient %q", got)
			}
			if !strings.Contains(dsn.headers, "Subject: forwarded") {
				t.Errorf("returned headers:\n%s", dsn.headers)
			}
		})
	}
}
