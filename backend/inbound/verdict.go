package inbound

import (
	"log/slog"
	"strings"

	"github.com/vmaild/vmaild/backend/delivery"
)

// Action is what becomes of a message. Later checks can only make it
// stronger: the order of the constants is their strength.
type Action int

const (
	// Accept delivers the message (to INBOX unless filters decide).
	Accept Action = iota
	// Junk delivers it into each recipient's Junk folder.
	Junk
	// Discard answers 250 and delivers nothing.
	Discard
	// Tempfail answers 4xx: the client tries again later.
	Tempfail
	// Reject answers 5xx: the client bounces the message.
	Reject
)

func (a Action) String() string {
	switch a {
	case Accept:
		return "accept"
	case Junk:
		return "junk"
	case Discard:
		return "discard"
	case Tempfail:
		return "tempfail"
	case Reject:
		return "reject"
	}
	return "unknown"
}

// ParseAction reads an action's configuration name (String's).
func ParseAction(s string) (Action, bool) {
	for a := Accept; a <= Reject; a++ {
		if strings.EqualFold(s, a.String()) {
			return a, true
		}
	}
	return Accept, false
}

// Final reports whether the action ends the run: no later check can
// change the message's fate.
func (a Action) Final() bool { return a >= Discard }

// Verdict is what the checks conclude about one message (see the package
// comment). Its embedded delivery.Verdict travels on to the delivery
// agent.
type Verdict struct {
	delivery.Verdict
	// Action is the strongest action asked for so far.
	Action Action
	// Code, Enhanced and Text are the SMTP reply of a reject or tempfail:
	// a zero Code is the default (550 5.7.1 or 451 4.7.1), an empty Text
	// "Message refused" or "Try again later".
	Code     int
	Enhanced string
	Text     string
	// By names the check that decided Action.
	By string
	// AddHeader are fields put on top of the message, in order.
	AddHeader []delivery.HeaderField
	// RemoveHeader are fields of the message as received to drop.
	RemoveHeader []HeaderRef

	check string      // the check running now
	attrs []slog.Attr // details for its log line
}

// HeaderRef names one field of the message as the client sent it: the
// Index-th (from 1) field called Name (case-insensitive), counting from
// the top. Message.Data and Message.Header also show the fields this
// server put on top (its Received field; Date and Message-ID that
// submission adds when missing), which are not counted and not removed:
// for any other name the count of Header().Values(name) is the same.
type HeaderRef struct {
	Name  string
	Index int
}

// Set raises the action to a, with the reply for a reject or tempfail
// (code 0 and empty texts for the defaults). A weaker action than the
// current one changes nothing.
func (v *Verdict) Set(a Action, code int, enhanced, text string) {
	if a == Junk {
		v.Junk = true
	}
	if a > v.Action {
		v.Action, v.Code, v.Enhanced, v.Text, v.By = a, code, enhanced, text, v.check
	}
}

// Reject refuses the message with a 5xx reply (code 0: 550 5.7.1).
func (v *Verdict) Reject(code int, enhanced, text string) { v.Set(Reject, code, enhanced, text) }

// Tempfail refuses it for now with a 4xx reply (code 0: 451 4.7.1).
func (v *Verdict) Tempfail(code int, enhanced, text string) { v.Set(Tempfail, code, enhanced, text) }

// Add puts a header field on top of the message.
func (v *Verdict) Add(name, value string) {
	v.AddHeader = append(v.AddHeader, delivery.HeaderField{Name: name, Value: value})
}

// Remove drops a field of the message as received.
func (v *Verdict) Remove(name string, index int) {
	v.RemoveHeader = append(v.RemoveHeader, HeaderRef{Name: name, Index: index})
}

// Log adds details to the running check's log line.
func (v *Verdict) Log(attrs ...slog.Attr) { v.attrs = append(v.attrs, attrs...) }

// Reply is the SMTP reply of a reject or tempfail verdict, defaults
// filled in; ok is false for the other actions.
func (v *Verdict) Reply() (code int, enhanced, text string, ok bool) {
	switch v.Action {
	case Reject:
		code, enhanced, text = 550, "5.7.1", "Message refused"
		if v.Code >= 500 && v.Code <= 599 {
			code = v.Code
		}
	case Tempfail:
		code, enhanced, text = 451, "4.7.1", "Try again later"
		if v.Code >= 400 && v.Code <= 499 {
			code = v.Code
		}
	default:
		return 0, "", "", false
	}
	if e := v.Enhanced; len(e) > 0 && e[0] == enhanced[0] {
		enhanced = e
	}
	if v.Text != "" {
		text = v.Text
	}
	return code, enhanced, text, true
}
