package delivery

import (
	"context"
	"net/textproto"
)

// Filter is one step of the plan stage (see the package comment).
type Filter interface {
	// Filter reads m and changes d. An error tempfails the destination.
	Filter(ctx context.Context, m *Mail, d *Decision) error
}

// FilterFunc lets a function be a Filter.
type FilterFunc func(ctx context.Context, m *Mail, d *Decision) error

func (f FilterFunc) Filter(ctx context.Context, m *Mail, d *Decision) error { return f(ctx, m, d) }

// Mail is what a filter sees of one message for one local destination.
type Mail struct {
	Envelope *Envelope
	// Recipient is the RCPT that reached Destination.
	Recipient   *Recipient
	Destination *Destination
	// Header is the message's header as received (keys canonical),
	// shared by every destination: read it, change Decision.AddHeader.
	Header textproto.MIMEHeader
	// Message is the whole message, header included.
	Message Message
}

// Decision is the plan for one local destination. The zero value files
// the message unchanged into INBOX.
type Decision struct {
	// Folder is the IMAP folder to file into; "" is INBOX. A folder that
	// does not exist files into INBOX.
	Folder string
	// Flags are IMAP flags and keywords the copy is stored with
	// (\Seen, \Flagged, $Junk…; Sieve's addflag). A copy with flags is
	// filed into cur/, as Dovecot does; new keywords are added to the
	// folder's keyword list. An unknown system flag tempfails the copy.
	Flags []string
	// Create makes a missing Folder (Sieve's fileinto :create) instead
	// of filing into INBOX.
	Create bool
	// More are further copies into other folders of the same mailbox
	// (Sieve's fileinto A; fileinto B), each as Folder, Flags and
	// Create are for the first. The destination fails if one does.
	More []Copy
	// AddHeader are fields put on top of this copy, in order.
	AddHeader []HeaderField
	// Discard drops this copy (it counts as delivered).
	Discard bool
	// Redirect sends the message on to these addresses (through the
	// queue, from LocalAgent.ForwardSender's sender: SRS), besides or
	// instead of the copy, with a Delivered-To naming the recipient on
	// top; an address the message was delivered to before is dropped as
	// a loop, and the copy kept if that leaves none.
	Redirect []string
	// Replies are new messages to send (vacation), from the null sender.
	Replies []Reply
	// Refuse, when Temporary or Permanent, fails this destination.
	Refuse Outcome
}

// Copy is one more copy of a destination's message (Decision.More).
type Copy struct {
	Folder string
	Flags  []string
	Create bool
}

// HeaderField is one header field a filter adds.
type HeaderField struct{ Name, Value string }

// Reply is a message a filter sends back, e.g. a vacation notice.
type Reply struct {
	To      string
	Message []byte
	// Queued, when set, is called once the reply is in the queue: a
	// vacation responder remembers the reply then, so that a delivery
	// that fails and is retried still answers.
	Queued func()
}

// DetailFolders files user+tag@ into the folder named tag when it exists
// (Postfix's and Dovecot's recipient_delimiter with a folder per tag).
type DetailFolders struct{}

func (DetailFolders) Filter(_ context.Context, m *Mail, d *Decision) error {
	if m.Destination.Detail != "" {
		d.Folder = m.Destination.Detail
	}
	return nil
}
