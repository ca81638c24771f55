package delivery

import "fmt"

// Kind is the class of an outcome.
type Kind int

const (
	// Accepted: the recipient passed Resolve (nothing delivered yet).
	Accepted Kind = iota
	// Delivered: the copy is on disk.
	Delivered
	// Queued: the queue owns it (a remote destination, or a local one
	// retried later).
	Queued
	// Temporary: not delivered; trying again later may work.
	Temporary
	// Permanent: not delivered, and never will be.
	Permanent
)

func (k Kind) String() string {
	switch k {
	case Accepted:
		return "accepted"
	case Delivered:
		return "delivered"
	case Queued:
		return "queued"
	case Temporary:
		return "temporary"
	case Permanent:
		return "permanent"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Cause says why a destination failed (or was redirected).
type Cause int

const (
	NoCause       Cause = iota
	NoSuchUser          // the address is not ours to deliver to
	Disabled            // the account exists and receives nothing
	BadAddress          // the address cannot be an address
	MailboxFull         // the mailbox was full before this message
	OverQuota           // this message does not fit
	DirectoryDown       // the user directory did not answer
	StoreFailed         // the mail store failed
	DiskFull            // the file system is full
	QueueFailed         // the queue could not take the message
	Loop                // the message has been here before
	AliasLoop           // alias expansion does not end
	RelayDenied         // a remote destination without a queue
	Rejected            // a filter refused it (Text says why)
	TimedOut            // the delivery's deadline passed
)

var causeNames = [...]string{"", "no such user", "mailbox disabled", "bad address", "mailbox full",
	"over quota", "directory unavailable", "store failed", "disk full", "queue failed",
	"mail loop", "alias loop", "relay denied", "rejected", "timed out"}

func (c Cause) String() string {
	if int(c) < len(causeNames) {
		return causeNames[c]
	}
	return fmt.Sprintf("cause(%d)", int(c))
}

// Outcome is what became of one destination or recipient.
type Outcome struct {
	Kind  Kind
	Cause Cause
	// Text is a filter's own words for a rejection, "" otherwise.
	Text string
}

// OK reports an outcome the sender need not hear about again.
func (o Outcome) OK() bool { return o.Kind == Accepted || o.Kind == Delivered || o.Kind == Queued }

// Failed reports Temporary or Permanent.
func (o Outcome) Failed() bool { return !o.OK() }

func (o Outcome) String() string {
	s := o.Kind.String()
	if o.Cause != NoCause {
		s += "(" + o.Cause.String() + ")"
	}
	if o.Text != "" {
		s += ": " + o.Text
	}
	return s
}

// Temp and Perm build failure outcomes.
func Temp(c Cause) Outcome { return Outcome{Kind: Temporary, Cause: c} }
func Perm(c Cause) Outcome { return Outcome{Kind: Permanent, Cause: c} }
