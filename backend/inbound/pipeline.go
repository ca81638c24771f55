package inbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/vmaild/vmaild/backend/delivery"
)

// DefaultTimeout bounds a step whose Timeout is zero.
const DefaultTimeout = 30 * time.Second

// UncheckedField names the header field that marks a message delivered
// although a check failed or was skipped ("rspamd: timeout").
const UncheckedField = "X-Vmaild-Unchecked"

// FailMode is what a step's error or timeout does to the message.
type FailMode int

const (
	// FailTempfail answers 451 4.7.1: the client retries later and
	// nothing is delivered unchecked (fail closed).
	FailTempfail FailMode = iota
	// FailAccept goes on without the check and marks the message with
	// an UncheckedField (fail open).
	FailAccept
)

// ParseFailMode reads a failure mode's configuration name: "tempfail"
// (or "") or "accept".
func ParseFailMode(s string) (FailMode, error) {
	switch s {
	case "", "tempfail":
		return FailTempfail, nil
	case "accept":
		return FailAccept, nil
	}
	return 0, fmt.Errorf("failure mode %q: want tempfail or accept", s)
}

// Step is one check with its policy.
type Step struct {
	Check Check
	// Roles are the listener roles the check runs for (delivery.RoleMTA,
	// …); nil is the MTA only.
	Roles []string
	// Timeout bounds the check (default DefaultTimeout).
	Timeout time.Duration
	// OnFailure is what its error or timeout does.
	OnFailure FailMode
	// MaxSize, when above 0, is the largest message given to the check;
	// a larger one skips it and is marked with an UncheckedField, or is
	// refused with 552 5.3.4 when OversizeReject is set.
	MaxSize        int64
	OversizeReject bool
	// SpamScanner says the check writes the spam fields (MarkSpam): when
	// it ran but gave no spam opinion (failed open, skipped), the
	// sender's own X-Spam-* fields are still removed, so none claims an
	// opinion we do not have.
	SpamScanner bool
}

func (s *Step) runsFor(role string) bool {
	if s.Roles == nil {
		return role == delivery.RoleMTA
	}
	return slices.Contains(s.Roles, role)
}

// Observer is told about every check and verdict, for metrics.
type Observer interface {
	// CheckDone reports one check: its result is the action it asked
	// for ("accept" when none), "error", "timeout" or "skipped".
	CheckDone(check, result string, d time.Duration)
	// VerdictDone reports the verdict on one message.
	VerdictDone(v *Verdict)
}

// Pipeline runs checks in order (see the package comment). The zero value
// runs nothing and accepts everything.
type Pipeline struct {
	Steps []Step
	// Logger gets one line per check and per verdict; nil discards.
	Logger *slog.Logger
	// Observer, when set, is told about every check and verdict.
	Observer Observer
}

// Runs reports whether any step runs for role, so a listener can skip
// the work of preparing a Message.
func (p *Pipeline) Runs(role string) bool {
	if p == nil {
		return false
	}
	for i := range p.Steps {
		if p.Steps[i].runsFor(role) {
			return true
		}
	}
	return false
}

// Run runs the steps for m.Role and returns the verdict, never nil.
func (p *Pipeline) Run(ctx context.Context, m *Message) *Verdict {
	v := &Verdict{}
	if p == nil {
		return v
	}
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ran, spamScanned := false, false
	for i := range p.Steps {
		s := &p.Steps[i]
		if !s.runsFor(m.Role) {
			continue
		}
		ran = true
		spamScanned = spamScanned || s.SpamScanner
		p.step(ctx, log, s, m, v)
		if v.Action.Final() {
			break
		}
	}
	v.check, v.attrs = "", nil
	if !ran {
		return v
	}
	if spamScanned && !v.Spam.Checked {
		removeSenderSpamFields(m, v)
	}
	attrs := []slog.Attr{slog.String("tx", m.ID), slog.String("action", v.Action.String())}
	if v.By != "" {
		attrs = append(attrs, slog.String("by", v.By))
	}
	if code, enh, text, ok := v.Reply(); ok {
		attrs = append(attrs, slog.Int("code", code), slog.String("enhanced", enh), slog.String("text", text))
	}
	if v.Spam.Checked {
		attrs = append(attrs, slog.Float64("spam_score", v.Spam.Score), slog.Bool("spam", v.Spam.Flag))
	}
	if v.Virus.Found != "" {
		attrs = append(attrs, slog.String("virus", v.Virus.Found))
	}
	if v.Junk {
		attrs = append(attrs, slog.Bool("junk", true))
	}
	log.LogAttrs(ctx, slog.LevelInfo, "verdict", attrs...)
	if p.Observer != nil {
		p.Observer.VerdictDone(v)
	}
	return v
}

// step runs one check under its timeout and applies its failure mode.
func (p *Pipeline) step(ctx context.Context, log *slog.Logger, s *Step, m *Message, v *Verdict) {
	name := s.Check.Name()
	v.check, v.attrs = name, nil
	start := time.Now()
	result := ""
	var err error
	if s.MaxSize > 0 && m.Data.Size() > s.MaxSize {
		result = "skipped"
		err = fmt.Errorf("message of %d bytes is over the check's limit of %d", m.Data.Size(), s.MaxSize)
		if s.OversizeReject {
			v.Reject(552, "5.3.4", "Message too large to be checked")
		} else {
			v.Add(UncheckedField, name+": too large")
		}
	} else {
		timeout := s.Timeout
		if timeout <= 0 {
			timeout = DefaultTimeout
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		before, junkBefore := v.Action, v.Junk
		err = s.Check.Check(cctx, m, v)
		timedOut := cctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case err != nil && (timedOut || errors.Is(err, context.DeadlineExceeded)):
			result = "timeout"
		case err != nil:
			result = "error"
		case v.Action > before:
			result = v.Action.String()
		case v.Junk && !junkBefore:
			result = Junk.String()
		default:
			result = Accept.String()
		}
		if err != nil {
			switch s.OnFailure {
			case FailAccept:
				v.Add(UncheckedField, name+": "+result)
			default:
				v.Tempfail(451, "4.7.1", "Message could not be checked, try again later")
			}
		}
	}
	d := time.Since(start)
	attrs := []slog.Attr{slog.String("tx", m.ID), slog.String("check", name),
		slog.String("result", result), slog.Duration("duration", d)}
	attrs = append(attrs, v.attrs...)
	level := slog.LevelInfo
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
		level = slog.LevelWarn
	}
	log.LogAttrs(ctx, level, "check", attrs...)
	if p.Observer != nil {
		p.Observer.CheckDone(name, result, d)
	}
}
