// Package inbound runs the checks a message passes at the end of DATA,
// after it is spooled and before the SMTP reply: sender authentication
// (SPF, DKIM, DMARC), spam and virus scanners (rspamd, spamd, clamd) and
// milters. Because they run before the reply, a refusal is in-session (the
// client hears 5xx or 4xx) and never a bounce.
//
// # The seam
//
// A check is one small interface:
//
//	type Check interface {
//		Name() string
//		Check(ctx context.Context, m *Message, v *Verdict) error
//	}
//
// Message is the envelope's facts (client address, HELO, MAIL FROM, RCPTs,
// authenticated user, TLS, listener role) and random access to the spooled
// message, which a check reads as often as it likes without copying.
// Verdict accumulates what the checks conclude:
//
//   - header fields to add on top of the message (Authentication-Results,
//     X-Spam-*) and incoming ones to remove (an Authentication-Results
//     claiming our authserv-id);
//   - the spam score and flag and the virus found (delivery.Verdict, which
//     Sieve's spamtest and virustest read);
//   - an action: accept, junk (file into the \Junk folder), discard,
//     tempfail (4xx) or reject (5xx, with the check's reply text).
//
// A check that fails (a scanner down, a DNS timeout) returns an error; it
// must give up when ctx is done.
//
// # The pipeline
//
// A Pipeline runs its Steps in order, each under its own timeout, for the
// listener roles it names (the MTA only, unless told: submission usually
// skips spam scanning). The first reject, tempfail or discard ends the run;
// junk does not, so later checks still add their fields. A step's error or
// timeout becomes its failure mode: tempfail (451 4.7.1, the default: the
// client retries and nothing is delivered unscanned) or accept, which
// delivers the message marked with an X-Vmaild-Unchecked field naming the
// check. A message larger than a step's MaxSize skips that step, or is
// refused when the step says so. Every check and every verdict is logged on
// one line and reported to the Observer (metrics).
//
// protocols/smtp runs the pipeline (Server.Checks), maps the action to the
// reply, writes the header fields and hands delivery.Verdict to the agent
// in delivery.Envelope.Verdict, where the JunkFolder filter files spam into
// Junk at a per-user or per-domain threshold.
//
// The checks shipped are in sub-packages, one per peer: rspamd, spamd,
// clamd and milter. cmd/vmaild builds the pipeline from the inbound.*
// configuration keys (cmd/vmaild/inbound.go), in inbound.order; a new
// check adds its keys, its name in that order and its Step there. Sender
// authentication (package backend/senderauth: SPF, DKIM, DMARC, keys
// sender_auth.*) always runs first, so the scanners see its
// Authentication-Results field (cmd/vmaild/senderchecks.go).
package inbound

import (
	"bufio"
	"context"
	"io"
	"net/netip"
	"net/textproto"
	"sync"
	"time"

	"github.com/vmaild/vmaild/backend/delivery"
)

// Check is one inbound check (see the package comment).
type Check interface {
	// Name names the check in logs, metrics, configuration and the
	// X-Vmaild-Unchecked field.
	Name() string
	// Check reads m and changes v. An error is the check's failure (its
	// step's failure mode applies); it must return soon after ctx is done.
	Check(ctx context.Context, m *Message, v *Verdict) error
}

// Message is what a check sees of one message.
type Message struct {
	// ID is the transaction's id, for logs.
	ID string
	// ClientIP is the client's address; invalid for a local socket.
	ClientIP netip.Addr
	// Helo is the client's HELO/EHLO name.
	Helo string
	// From is the reverse path; "" is the null sender.
	From string
	// Recipients are the accepted forward paths.
	Recipients []string
	// User is the authenticated account, "" for none.
	User string
	// Trusted is true for a client in the listener's MyNetworks, which
	// relays without AUTH: sender authentication has nothing to check.
	Trusted bool
	// TLS is the TLS version ("TLSv1.3"), "" without TLS.
	TLS string
	// Role is the listener's role (delivery.RoleMTA, …).
	Role string
	// Hostname is our name (the authserv-id of Authentication-Results).
	Hostname string
	// Received is when the message arrived.
	Received time.Time
	// Data is the message as it will be delivered: our Received field on
	// top of what the client sent, CRLF line ends.
	Data delivery.Message

	headerOnce sync.Once
	header     textproto.MIMEHeader
}

// maxHeaderScan bounds how much of a message Header reads.
const maxHeaderScan = 1 << 20

// Header is the message's header (keys canonical), read once and shared
// by every check; a header that cannot be read is empty. Do not change it.
func (m *Message) Header() textproto.MIMEHeader {
	m.headerOnce.Do(func() {
		r := textproto.NewReader(bufio.NewReader(io.NewSectionReader(m.Data, 0, min(m.Data.Size(), maxHeaderScan))))
		m.header, _ = r.ReadMIMEHeader()
		if m.header == nil {
			m.header = textproto.MIMEHeader{}
		}
	})
	return m.header
}

// Reader reads the whole message from its start.
func (m *Message) Reader() io.Reader { return io.NewSectionReader(m.Data, 0, m.Data.Size()) }

// CheckFunc makes a Check of a function.
func CheckFunc(name string, f func(ctx context.Context, m *Message, v *Verdict) error) Check {
	return funcCheck{name, f}
}

type funcCheck struct {
	name string
	f    func(ctx context.Context, m *Message, v *Verdict) error
}

func (c funcCheck) Name() string { return c.name }
func (c funcCheck) Check(ctx context.Context, m *Message, v *Verdict) error {
	return c.f(ctx, m, v)
}
