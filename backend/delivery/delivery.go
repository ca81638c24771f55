// Package delivery is the mail delivery agent (MDA): given an envelope and
// a message spooled once, it resolves every recipient through the user
// directory, checks quotas, detects loops, writes local copies to the store
// and hands remote destinations to the outbound queue, returning one status
// per recipient.
//
// The front ends (SMTP, submission, LMTP) see only the Agent interface and
// the Status it returns; they map a Status to a reply and nothing else.
package delivery

import (
	"context"
	"fmt"
	"io"
)

// Envelope is the SMTP envelope of one message.
type Envelope struct {
	// From is the reverse path; "" is the null sender (bounces).
	From string
	// Recipients are the forward paths accepted at RCPT, in order.
	Recipients []string
	// ID is the session's or queue's id, for logs.
	ID string
}

// Message is a message spooled once by the front end: read it as often as
// there are recipients without copying it.
type Message interface {
	io.ReaderAt
	Size() int64
}

// Status is the outcome for one recipient, carried to the client as an
// SMTP reply (code, enhanced code, text).
type Status struct {
	Code     int    // 250, 4xx, 5xx
	Enhanced string // "2.0.0", "4.2.2", "5.1.1" …
	Text     string
}

// OK reports success.
func (s Status) OK() bool { return s.Code >= 200 && s.Code < 300 }

// Temporary reports a 4xx status: the sender should try again.
func (s Status) Temporary() bool { return s.Code >= 400 && s.Code < 500 }

func (s Status) String() string { return fmt.Sprintf("%d %s %s", s.Code, s.Enhanced, s.Text) }

// Statuses that more than one place returns.
var (
	Delivered       = Status{250, "2.0.0", "Delivered"}
	Queued          = Status{250, "2.0.0", "Queued for delivery"}
	Accepted        = Status{250, "2.1.5", "Recipient OK"}
	NoSuchUser      = Status{550, "5.1.1", "No such user here"}
	Disabled        = Status{550, "5.2.1", "Mailbox disabled"}
	BadAddress      = Status{553, "5.1.3", "Bad recipient address syntax"}
	MailboxFull     = Status{452, "4.2.2", "Mailbox full"}
	TooBigForQuota  = Status{552, "5.2.2", "Message would exceed the mailbox quota"}
	DirectoryDown   = Status{451, "4.3.0", "Directory temporarily unavailable, try again later"}
	StoreFailed     = Status{451, "4.3.0", "Local delivery failed temporarily, try again later"}
	QueueFailed     = Status{451, "4.3.0", "Could not queue the message, try again later"}
	LoopDetected    = Status{554, "5.4.6", "Mail loop detected"}
	AliasLoop       = Status{554, "5.4.6", "Alias expansion loop"}
	RelayNotAllowed = Status{554, "5.7.1", "Relay access denied"}
)

// Agent is what the SMTP, submission and LMTP front ends deliver through.
type Agent interface {
	// CheckRecipient is the RCPT-time check of a recipient in a local
	// domain: Accepted, NoSuchUser, MailboxFull (452 4.2.2 when the
	// mailbox is already full), DirectoryDown, ….
	CheckRecipient(ctx context.Context, rcpt string) Status
	// Deliver delivers msg to every recipient of env and returns one status
	// per recipient, in env.Recipients order. A 250 status means the local
	// copy is on disk (fsynced) or the remote copy is in the durable queue.
	Deliver(ctx context.Context, env Envelope, msg Message) []Status
}
