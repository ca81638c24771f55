package delivery_test

import (
	"context"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/backend/delivery"
)

// TestJunkFolder: the verdict of the checks files spam into Junk, created
// when missing, at the recipient's, its domain's or the default threshold.
func TestJunkFolder(t *testing.T) {
	spam := func(score float64, flag bool) *delivery.Verdict {
		return &delivery.Verdict{Spam: delivery.Spam{Checked: true, Scanner: "test", Score: score, Threshold: 6, Flag: flag}}
	}
	filter := delivery.JunkFolder{Threshold: 5, Thresholds: map[string]float64{
		"bob@example.com":   10, // bob tolerates more
		"carol@example.com": -1, // carol wants everything in INBOX
	}}
	tests := []struct {
		name    string
		rcpt    string
		verdict *delivery.Verdict
		junk    bool
	}{
		{"no verdict", "alice@example.com", nil, false},
		{"below the threshold", "alice@example.com", spam(4.9, false), false},
		{"at the threshold", "alice@example.com", spam(5, false), true},
		{"per user threshold", "bob@example.com", spam(7, true), false},
		{"per user threshold reached", "bob@example.com", spam(10, true), true},
		{"junk asked", "alice@example.com", &delivery.Verdict{Junk: true}, true},
		{"filing off", "carol@example.com", &delivery.Verdict{Junk: true, Spam: spam(50, true).Spam}, false},
		{"not scanned", "alice@example.com", &delivery.Verdict{Virus: delivery.Virus{Checked: true}}, false},
		// A queue retry reads the fields the checks wrote.
		{"retry of spam", "alice@example.com", nil, true},
		{"retry of spam, per user threshold", "bob@example.com", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, delivery.Config{})
			f.agent.Filters = []delivery.Filter{filter}
			env := delivery.Envelope{ID: "t", From: "sender@remote.test", Recipients: rcpts(tt.rcpt), Verdict: tt.verdict}
			msg := body
			if strings.HasPrefix(tt.name, "retry") {
				env.Role = delivery.RoleQueue
				msg = "X-Spam-Flag: YES\r\nX-Spam-Score: 7.50\r\n" + body
			}
			out := f.agent.Deliver(context.Background(), env, newMsg(msg))
			if out[0] != delivered {
				t.Fatalf("outcome %v", out[0])
			}
			junk, inbox := f.folderCount(t, tt.rcpt, "Junk"), f.folderCount(t, tt.rcpt, "")
			if tt.junk && (junk != 1 || inbox != 0) || !tt.junk && (junk != 0 || inbox != 1) {
				t.Errorf("Junk %d, INBOX %d; want junk=%v", junk, inbox, tt.junk)
			}
		})
	}
}

// TestSieveTests: the values Sieve's spamtest and virustest read.
func TestSieveTests(t *testing.T) {
	tests := []struct {
		v           *delivery.Verdict
		spam, virus int
	}{
		{nil, 0, 0},
		{&delivery.Verdict{}, 0, 0},
		{&delivery.Verdict{Spam: delivery.Spam{Checked: true, Score: -3, Threshold: 5}}, 1, 0},
		{&delivery.Verdict{Spam: delivery.Spam{Checked: true, Score: 5, Threshold: 5}}, 6, 0},
		{&delivery.Verdict{Spam: delivery.Spam{Checked: true, Score: 100, Threshold: 5}}, 10, 0},
		{&delivery.Verdict{Spam: delivery.Spam{Checked: true, Flag: true}}, 10, 0},
		{&delivery.Verdict{Virus: delivery.Virus{Checked: true}}, 0, 1},
		{&delivery.Verdict{Virus: delivery.Virus{Checked: true, Found: "Eicar-Test-Signature"}}, 0, 5},
	}
	for _, tt := range tests {
		if got := tt.v.SpamTest(); got != tt.spam {
			t.Errorf("%+v: spamtest %d, want %d", tt.v, got, tt.spam)
		}
		if got := tt.v.VirusTest(); got != tt.virus {
			t.Errorf("%+v: virustest %d, want %d", tt.v, got, tt.virus)
		}
	}
}
