package inbound

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/delivery"
)

type bytesMessage struct{ *bytes.Reader }

func (m bytesMessage) Size() int64 { return m.Reader.Size() }

func testMessage(s string) *Message {
	return &Message{ID: "t", Role: delivery.RoleMTA, Data: bytesMessage{bytes.NewReader([]byte(s))}}
}

type observed struct {
	checks   []string
	verdicts []Action
}

func (o *observed) CheckDone(check, result string, _ time.Duration) {
	o.checks = append(o.checks, check+"="+result)
}
func (o *observed) VerdictDone(v *Verdict) { o.verdicts = append(o.verdicts, v.Action) }

func act(a Action) func(context.Context, *Message, *Verdict) error {
	return func(_ context.Context, _ *Message, v *Verdict) error { v.Set(a, 0, "", ""); return nil }
}

// TestPipeline: order, the strongest action wins, a final action ends the
// run, failure modes, roles.
func TestPipeline(t *testing.T) {
	fail := func(context.Context, *Message, *Verdict) error { return errors.New("down") }
	tests := []struct {
		name   string
		steps  []Step
		role   string
		action Action
		checks []string
	}{
		{"none", nil, delivery.RoleMTA, Accept, nil},
		{"junk goes on, reject ends", []Step{
			{Check: CheckFunc("a", act(Junk))}, {Check: CheckFunc("b", act(Reject))}, {Check: CheckFunc("c", act(Accept))},
		}, delivery.RoleMTA, Reject, []string{"a=junk", "b=reject"}},
		{"weaker does not win", []Step{
			{Check: CheckFunc("a", act(Discard))}, {Check: CheckFunc("b", act(Junk))},
		}, delivery.RoleMTA, Discard, []string{"a=discard"}},
		{"fail closed", []Step{{Check: CheckFunc("a", fail)}, {Check: CheckFunc("b", act(Accept))}},
			delivery.RoleMTA, Tempfail, []string{"a=error"}},
		{"fail open", []Step{{Check: CheckFunc("a", fail), OnFailure: FailAccept}, {Check: CheckFunc("b", act(Accept))}},
			delivery.RoleMTA, Accept, []string{"a=error", "b=accept"}},
		{"roles", []Step{{Check: CheckFunc("mta", act(Reject))},
			{Check: CheckFunc("sub", act(Junk)), Roles: []string{delivery.RoleSubmission}}},
			delivery.RoleSubmission, Junk, []string{"sub=junk"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &observed{}
			p := &Pipeline{Steps: tt.steps, Observer: o}
			m := testMessage("Subject: x\r\n\r\nbody\r\n")
			m.Role = tt.role
			v := p.Run(context.Background(), m)
			if v.Action != tt.action {
				t.Errorf("action %v, want %v", v.Action, tt.action)
			}
			if len(o.checks) != len(tt.checks) {
				t.Fatalf("checks %v, want %v", o.checks, tt.checks)
			}
			for i := range tt.checks {
				if o.checks[i] != tt.checks[i] {
					t.Errorf("checks %v, want %v", o.checks, tt.checks)
				}
			}
			if wantVerdicts := len(tt.checks) > 0; wantVerdicts != (len(o.verdicts) == 1) {
				t.Errorf("verdicts observed %v", o.verdicts)
			}
		})
	}
}

func TestReply(t *testing.T) {
	tests := []struct {
		v              Verdict
		code           int
		enhanced, text string
		ok             bool
	}{
		{Verdict{}, 0, "", "", false},
		{Verdict{Action: Junk}, 0, "", "", false},
		{Verdict{Action: Reject}, 550, "5.7.1", "Message refused", true},
		{Verdict{Action: Reject, Code: 554, Enhanced: "5.7.1", Text: "Virus"}, 554, "5.7.1", "Virus", true},
		// A code or enhanced code of the wrong class is not used.
		{Verdict{Action: Reject, Code: 451, Enhanced: "4.7.1"}, 550, "5.7.1", "Message refused", true},
		{Verdict{Action: Tempfail, Code: 550}, 451, "4.7.1", "Try again later", true},
	}
	for _, tt := range tests {
		code, enh, text, ok := tt.v.Reply()
		if code != tt.code || enh != tt.enhanced || text != tt.text || ok != tt.ok {
			t.Errorf("%+v: %d %s %q %v", tt.v, code, enh, text, ok)
		}
	}
	for a := Accept; a <= Reject; a++ {
		if got, ok := ParseAction(a.String()); !ok || got != a {
			t.Errorf("ParseAction(%q) = %v, %v", a, got, ok)
		}
	}
}

// TestSenderSpamFieldsWithoutOpinion: a spam scanner that failed open
// gave no opinion, so the sender's own X-Spam-* fields are removed all the
// same; a pipeline without a spam scanner leaves them (they are then not
// ours to judge, and nothing reads them as our verdict).
func TestSenderSpamFieldsWithoutOpinion(t *testing.T) {
	const msg = "X-Spam-Flag: NO\r\nX-Spam-Score: -50\r\nSubject: hi\r\n\r\nbody\r\n"
	fail := func(context.Context, *Message, *Verdict) error { return errors.New("down") }
	for _, tc := range []struct {
		name    string
		spam    bool
		removed int
	}{
		{"spam scanner failed open", true, 2},
		{"no spam scanner", false, 0},
	} {
		p := &Pipeline{Steps: []Step{{Check: CheckFunc("scan", fail), OnFailure: FailAccept, SpamScanner: tc.spam}}}
		v := p.Run(context.Background(), testMessage(msg))
		if v.Action != Accept || len(v.RemoveHeader) != tc.removed {
			t.Errorf("%s: action %v, removed %v, want accept and %d removed", tc.name, v.Action, v.RemoveHeader, tc.removed)
		}
	}
}
