// Package sieve is vmaild's Sieve interpreter (RFC 5228): it compiles a
// user's script once into a Script, then runs it against each message to
// say what should happen to it (keep, file into folders with flags,
// redirect, reject, discard, send a vacation reply). It only decides:
// writing the copies, queueing redirects and sending replies (with their
// de-duplication and never-answer rules) are the delivery agent's job.
//
// Supported extensions, each named in a script's require: fileinto,
// reject, ereject, envelope, imap4flags, body, variables, vacation,
// vacation-seconds, copy, relational, subaddress, date, index, mailbox,
// spamtest, spamtestplus, virustest, and the comparators i;octet,
// i;ascii-casemap and i;ascii-numeric (comparator-i;ascii-numeric).
//
// A Script is immutable and safe for concurrent use, so a compiled script
// can be cached and shared by every delivery to its owner. RunAll runs an
// administrator's scripts around a user's, as Pigeonhole's sieve_before
// and sieve_after. Behaviour follows Pigeonhole (Dovecot's Sieve) where
// the RFCs leave room, checked by running both on a corpus (diff_test.go);
// one known difference is a Pigeonhole bug, see TestGlob. Everything a
// hostile script could spend is bounded (see Limits): its size, nesting,
// string lists, actions, redirects and run time; :matches takes time at
// most proportional to pattern length times subject length, never
// backtracking exponentially.
package sieve

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Limits bound what one script may cost. Zero fields take the defaults,
// which are Pigeonhole's where it has one (sieve_max_script_size,
// sieve_max_actions, sieve_max_redirects).
type Limits struct {
	// MaxScriptSize is the largest script source accepted, in bytes.
	// Default 1 MiB.
	MaxScriptSize int
	// MaxNesting bounds blocks and tests nested in each other. Default 32.
	MaxNesting int
	// MaxStringList bounds the strings of one string list. Default 1024.
	MaxStringList int
	// MaxActions bounds the actions one run may take (implicit keep
	// aside). Default 32.
	MaxActions int
	// MaxRedirects bounds the redirects one run may take. Default 4.
	MaxRedirects int
	// MaxRunTime bounds one run; the run's context may end it sooner.
	// Default 2s.
	MaxRunTime time.Duration
}

// Defaults of Limits.
const (
	DefaultMaxScriptSize = 1 << 20
	DefaultMaxNesting    = 32
	DefaultMaxStringList = 1024
	DefaultMaxActions    = 32
	DefaultMaxRedirects  = 4
	DefaultMaxRunTime    = 2 * time.Second
)

// Options configure Compile. The zero value allows every supported
// extension within the default limits.
type Options struct {
	Limits Limits
	// Extensions, when not nil, are the only extensions a script may
	// require (an administrator may forbid "vacation" or "reject").
	Extensions []string
}

// Error is a compile error: the script is refused. Line is 1-based (0 when
// the error is not about one place, e.g. the script's size).
type Error struct {
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return "sieve: " + e.Msg
	}
	return fmt.Sprintf("sieve: line %d: %s", e.Line, e.Msg)
}

// RuntimeError ends a run early: a limit was reached, actions conflict,
// or the context ended. Run then returns a Result that keeps the message
// (RFC 5228 section 2.10.6), so mail is never lost to a broken script.
type RuntimeError struct {
	Line int
	Msg  string
}

func (e *RuntimeError) Error() string {
	if e.Line == 0 {
		return "sieve: runtime: " + e.Msg
	}
	return fmt.Sprintf("sieve: line %d: %s", e.Line, e.Msg)
}

// Env is what a script knows of the delivery besides the message.
type Env struct {
	// From is the envelope sender (MAIL FROM) without angle brackets; ""
	// is the null sender <>.
	From string
	// To is the envelope recipient this run is for (the final address).
	To string
	// Now is the time the currentdate test sees; zero is time.Now().
	Now time.Time
	// Location is the time zone of currentdate and of date without :zone;
	// nil is time.Local.
	Location *time.Location
	// MailboxExists answers the mailbox extension's mailboxexists test;
	// nil: only INBOX exists.
	MailboxExists func(name string) bool
	// Spam and Virus are the inbound scanners' verdicts, read by spamtest
	// and virustest; the zero Verdict means the message was not tested.
	Spam, Virus Verdict
	// SubaddressSeparator splits user+detail for :user and :detail;
	// "" is "+".
	SubaddressSeparator string
}

// Verdict is a scanner's result in RFC 5235 terms.
type Verdict struct {
	// Tested says a scanner looked at the message.
	Tested bool
	// Value is spamtest's 1..10 (1 surely not spam, 10 surely spam) or
	// virustest's 1..5 (1 clean, 5 infected and not cleaned).
	Value int
	// Percent is spamtestplus's :percent value, 0..100.
	Percent int
}

// ActionKind says what an Action does.
type ActionKind int

// Action kinds.
const (
	// Keep stores the message in the default mailbox (INBOX).
	Keep ActionKind = iota + 1
	// FileInto stores the message in Action.Mailbox.
	FileInto
	// Redirect sends the message on to Action.Address, envelope sender
	// unchanged.
	Redirect
	// Reject refuses the message with Action.Reason: at SMTP time when
	// possible, else by a Message Disposition Notification (RFC 5429).
	Reject
	// EReject refuses the message at the protocol level with
	// Action.Reason (RFC 5429 ereject).
	EReject
	// Discard drops the message silently.
	Discard
	// Vacation sends the reply Action.Vacation describes, subject to the
	// sender's de-duplication and never-answer rules.
	Vacation
)

var kindNames = [...]string{"", "keep", "fileinto", "redirect", "reject", "ereject", "discard", "vacation"}

func (k ActionKind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("ActionKind(%d)", int(k))
}

// Action is one thing a run decided, in the order the script took it.
type Action struct {
	Kind ActionKind
	// Mailbox is FileInto's folder (modified UTF-7 is not applied: it is
	// the name as the script spelled it, "/"-free hierarchy as written).
	Mailbox string
	// Flags are the IMAP flags a Keep or FileInto stores the copy with
	// (imap4flags), system flags spelled canonically (\Seen), keywords
	// as the script wrote them (ValidFlag tells which IMAP can store).
	Flags []string
	// Create asks FileInto to create a missing mailbox (RFC 5490 :create).
	Create bool
	// Copy says the action does not cancel the implicit keep (RFC 3894).
	Copy bool
	// Address is Redirect's destination.
	Address string
	// Reason is the text of Reject and EReject.
	Reason string
	// Vacation are Vacation's parameters.
	Vacation *VacationParams
	// Line is where in the script the action was taken.
	Line int
}

// VacationParams are the arguments of a vacation action (RFC 5230). The
// sender of the reply decides whether it is due: not to <>, lists, bulk or
// auto-submitted mail, and once per Handle and sender per Period.
type VacationParams struct {
	// Reason is the reply's body, or a whole MIME entity when Mime.
	Reason string
	// Subject is the reply's subject; "" means "Auto: " and the
	// original's subject.
	Subject string
	// From is the reply's From; "" means the recipient.
	From string
	// Addresses are the recipient's other addresses (:addresses): the
	// reply is only due when one of them, or the recipient, is in the
	// original's To, Cc or Bcc.
	Addresses []string
	Mime      bool
	// Handle names the reply for de-duplication; when the script gives
	// none it is derived from the reason, subject, from and mime.
	Handle string
	// Period is :days or :seconds, defaulting to 7 days, at least Pigeonhole's
	// default minimum of a day.
	Period time.Duration
	// Requested is :days or :seconds as the script gave it, before that
	// minimum, and HasPeriod says that it gave one: a responder with its
	// own minimum and maximum (sieve_vacation_min_period) applies them.
	Requested time.Duration
	HasPeriod bool
}

// Result is what a run decided.
type Result struct {
	// Actions are the explicit actions, in order, duplicates merged.
	Actions []Action
	// ImplicitKeep says the message is also stored in INBOX because no
	// action cancelled the implicit keep (RFC 5228 section 2.10.2).
	ImplicitKeep bool
	// KeepFlags are the flags of the implicit keep (imap4flags' internal
	// variable when the run ended).
	KeepFlags []string
}

// Requires lists the extensions the script requires, in source order.
func (s *Script) Requires() []string { return append([]string(nil), s.requires...) }

func (l Limits) withDefaults() Limits {
	if l.MaxScriptSize <= 0 {
		l.MaxScriptSize = DefaultMaxScriptSize
	}
	if l.MaxNesting <= 0 {
		l.MaxNesting = DefaultMaxNesting
	}
	if l.MaxStringList <= 0 {
		l.MaxStringList = DefaultMaxStringList
	}
	if l.MaxActions <= 0 {
		l.MaxActions = DefaultMaxActions
	}
	if l.MaxRedirects <= 0 {
		l.MaxRedirects = DefaultMaxRedirects
	}
	if l.MaxRunTime <= 0 {
		l.MaxRunTime = DefaultMaxRunTime
	}
	return l
}

// String renders r one action a line, the way vmaild sieve test prints it.
func (r *Result) String() string {
	var b strings.Builder
	for _, a := range r.Actions {
		b.WriteString(a.String())
		b.WriteByte('\n')
	}
	if r.ImplicitKeep {
		b.WriteString("implicit keep")
		if len(r.KeepFlags) > 0 {
			b.WriteString(" flags " + strings.Join(r.KeepFlags, " "))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Script is a compiled script: immutable, safe for concurrent runs.
type Script struct {
	requires []string
	limits   Limits
	body     []*stmt
	// exts are the extensions the script required, for the run-time
	// behaviour they switch on (match variables).
	exts map[string]bool
}

// Compile parses and checks src. Every error names the line it is on; a
// script that compiles never fails a run for a reason Compile could
// have seen.
func Compile(src []byte, opts Options) (*Script, error) {
	return compile(src, opts)
}

// Run runs the script against one message for one recipient. A
// RuntimeError comes with the Result to use instead: the implicit keep.
// Other errors (none today) would mean the message could not be read.
func (s *Script) Run(ctx context.Context, env Env, msg *Message) (*Result, error) {
	return s.run(ctx, env, msg)
}

// String renders a one line, e.g. `fileinto :create :flags "\\Seen" "Junk"`.
func (a Action) String() string {
	var b strings.Builder
	b.WriteString(a.Kind.String())
	if a.Copy {
		b.WriteString(" :copy")
	}
	if a.Create {
		b.WriteString(" :create")
	}
	if len(a.Flags) > 0 {
		fmt.Fprintf(&b, " :flags %q", strings.Join(a.Flags, " "))
	}
	switch a.Kind {
	case FileInto:
		fmt.Fprintf(&b, " %q", a.Mailbox)
	case Redirect:
		fmt.Fprintf(&b, " %q", a.Address)
	case Reject, EReject:
		fmt.Fprintf(&b, " %q", a.Reason)
	case Vacation:
		v := a.Vacation
		fmt.Fprintf(&b, " :seconds %d", int64(v.Period/time.Second))
		if v.Subject != "" {
			fmt.Fprintf(&b, " :subject %q", v.Subject)
		}
		if v.From != "" {
			fmt.Fprintf(&b, " :from %q", v.From)
		}
		if len(v.Addresses) > 0 {
			fmt.Fprintf(&b, " :addresses %q", v.Addresses)
		}
		if v.Mime {
			b.WriteString(" :mime")
		}
		fmt.Fprintf(&b, " :handle %q %q", v.Handle, v.Reason)
	}
	return b.String()
}

// ScoreVerdict turns a scanner's score out of max (a spam score of 6.5
// out of 10, a virus score out of 5) into a Verdict, scaled the way
// Pigeonhole scales a score header: spamtest 1 + 9 × score/max,
// virustest 1 + 4 × score/max, rounded down; :percent 100 × score/max.
func ScoreVerdict(score, max float64, virus bool) Verdict {
	if max <= 0 {
		return Verdict{}
	}
	r := score / max
	if r < 0 {
		return Verdict{Tested: true}
	}
	r = min(r, 1)
	steps := 9.0
	if virus {
		steps = 4
	}
	return Verdict{Tested: true, Value: int(r*steps + 1.001), Percent: int(r*100 + 0.001)}
}
