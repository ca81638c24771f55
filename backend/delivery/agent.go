package delivery

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/textproto"
	"strings"
	"syscall"
	"time"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/userdb"
)

// Mailstore writes local copies durably: nil means the copy is on disk,
// and the recipient's quota was charged atomically before it became
// visible. *store.Store implements it.
type Mailstore interface {
	Deliver(ctx context.Context, rc store.Recipient, r io.Reader) (store.Delivery, error)
	// DeliverGroups writes each group's body once, hard-links it to every
	// recipient of the group, and makes all of them durable together.
	DeliverGroups(ctx context.Context, groups []store.Group) [][]store.Delivery
}

// Queue takes remote destinations, redirects, replies and local
// destinations to retry durably: nil means the message is in the spool.
// backend/queue implements it.
type Queue interface {
	EnqueueReaderAt(ctx context.Context, from string, rcpts []string, msg io.ReaderAt, size int64) (string, error)
	// EnqueueHeld spools a fan-out before the agent writes it, so a crash
	// half way leaves the rest queued; Release then keeps only the
	// destinations still to do. The queue keeps the recipients in final
	// marked so and hands them back to Redeliver marked (Recipient.Final).
	EnqueueHeld(ctx context.Context, from string, rcpts, final []string, msg io.ReaderAt, size int64) (string, error)
	// EnqueueRetry spools destinations to retry, final as for EnqueueHeld.
	EnqueueRetry(ctx context.Context, from string, rcpts, final []string, msg io.ReaderAt, size int64) (string, error)
	Release(id string, keep []string) error
}

// Config is the agent's policy. Zero values are sensible.
type Config struct {
	// MaxHops is the Received-header count at which a message is taken to
	// be looping (Postfix's hopcount_limit). Default 50.
	MaxHops int `yaml:"max_hops" help:"Received headers at which a message is taken to loop"`
	// OverQuotaTemporary answers a message that does not fit a mailbox
	// with 452 4.2.2 (the sender retries) instead of 552 5.2.2 (bounce).
	OverQuotaTemporary bool `yaml:"over_quota_temporary" help:"answer over-quota messages with 452 (retry) instead of 552 (bounce)"`
	// DetailFolders runs the DetailFolders filter: user+tag@ into the
	// folder named tag when it exists (otherwise INBOX).
	DetailFolders bool `yaml:"detail_folders" help:"deliver user+tag@ into the folder named tag when it exists"`
	// DeliveredTo is what the Delivered-To field of a local copy names:
	// "recipient" (default), the address accepted at RCPT, so copies
	// reached through one alias are one file; "none" writes no such field,
	// so every local copy of a message is one file hard-linked into each
	// mailbox (Dovecot's lmtp_hdr_delivery_address = none). Loops through
	// outside forwarders are then caught by max_hops alone.
	DeliveredTo string `yaml:"delivered_to" help:"Delivered-To of local copies: recipient (the RCPT address) or none (one file for all recipients of a message)"`
	// Sieve runs each account's active Sieve script (Pigeonhole's
	// .dovecot.sieve in the mail home beside the Maildir) as a filter;
	// the server adds the Sieve filter when set. Default on.
	Sieve bool `yaml:"sieve" help:"run users' active Sieve scripts (.dovecot.sieve in the mail home, as Pigeonhole) at delivery"`
	// SieveBefore and SieveAfter are the administrator's scripts, run
	// before and after each account's own (Pigeonhole's sieve_before and
	// sieve_after; "spam into Junk" for everyone): files, or directories
	// whose *.sieve files run in name order. %d in a path is the
	// recipient's domain, so a domain may have its own; paths that do not
	// exist are skipped.
	SieveBefore []string `yaml:"sieve_before" help:"Sieve scripts (files or directories of *.sieve; %d: the recipient's domain) run before each user's script"`
	SieveAfter  []string `yaml:"sieve_after" help:"Sieve scripts (files or directories of *.sieve; %d: the recipient's domain) run after each user's script, while the message is still kept"`
	// Timeout bounds one delivery, all its destinations together.
	// Default 2m.
	Timeout time.Duration `yaml:"timeout" help:"deadline of one delivery across all its destinations (a frozen directory or store makes it tempfail, not hang)"`
}

// DefaultTimeout is Config.Timeout's default.
const DefaultTimeout = 2 * time.Minute

// LocalAgent is the vmaild MDA.
type LocalAgent struct {
	Directory userdb.Directory
	// Quotas keeps usage; nil: nothing is accounted or enforced.
	Quotas userdb.QuotaStore
	Store  Mailstore
	// Queue receives remote destinations and the local ones to retry; nil
	// refuses remote destinations and leaves failures to the sender.
	Queue  Queue
	Config Config
	// Filters run in order for every local destination, after
	// DetailFolders when Config.DetailFolders is set.
	Filters []Filter
	// ForwardSender, when set, is the envelope sender of mail that an
	// alias or a filter forwards to a remote address, given the original
	// one: the place for SRS (package backend/srs), so remote rejections
	// come back to us and not to a forged sender. Nil keeps the sender.
	ForwardSender func(ctx context.Context, from string) (string, error)
	// Sign, when set, returns header fields (DKIM-Signature) to put on
	// top of mail an authenticated user (Envelope.User) sends on to
	// remote destinations: called once per delivery, before the message
	// is queued, so every remote copy carries the same signature. An
	// error is logged and the mail is queued unsigned: a signature is
	// worth less than the message. A reply a filter writes (vacation) is
	// signed too, with Envelope.User the mailbox owner it answers for.
	Sign   func(ctx context.Context, env *Envelope, msg Message) ([]byte, error)
	Logger *slog.Logger
}

var _ Agent = (*LocalAgent)(nil)

func (a *LocalAgent) log() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// outcomeOf classifies a directory error once.
func outcomeOf(err error) Outcome {
	switch {
	case userdb.Temporary(err):
		return Temp(DirectoryDown)
	case errors.Is(err, context.DeadlineExceeded):
		return Temp(TimedOut)
	case errors.Is(err, userdb.ErrAliasLoop):
		return Perm(AliasLoop)
	case errors.Is(err, userdb.ErrDisabled):
		return Perm(Disabled)
	case errors.Is(err, userdb.ErrInvalid):
		return Perm(BadAddress)
	case errors.Is(err, userdb.ErrNotFound):
		return Perm(NoSuchUser)
	}
	// An error of unknown class is an internal failure: never bounce on it.
	return Temp(DirectoryDown)
}

// Resolve is the resolve stage at RCPT: it expands address, looks up each
// local mailbox once and refuses the recipient when every mailbox it
// reaches is already full, all within one directory timeout.
func (a *LocalAgent) Resolve(ctx context.Context, address string) (Recipient, Outcome) {
	ctx, cancel := userdb.Bound(ctx, a.Directory)
	defer cancel()
	rc, o := a.resolve(ctx, address)
	if o.Failed() {
		return rc, o
	}
	if a.Quotas == nil {
		return rc, o
	}
	full := 0
	for _, d := range rc.Destinations {
		if !d.Local {
			return rc, o
		}
		isFull, err := a.isFull(ctx, d)
		if err != nil {
			return rc, outcomeOf(err)
		}
		if isFull {
			full++
		}
	}
	if full > 0 && full == len(rc.Destinations) {
		return rc, Temp(MailboxFull)
	}
	return rc, o
}

// resolve expands an address into destinations, with each local one's
// account and quota limit.
func (a *LocalAgent) resolve(ctx context.Context, address string) (Recipient, Outcome) {
	ctx, cancel := userdb.Bound(ctx, a.Directory) // one deadline for all its lookups
	defer cancel()
	rc := Recipient{Address: address, ORCPT: address}
	dests, err := a.Directory.Resolve(ctx, address)
	if err != nil {
		return rc, outcomeOf(err)
	}
	for _, ud := range dests {
		d, err := a.lookup(ctx, ud)
		if err != nil {
			return rc, outcomeOf(err)
		}
		rc.Destinations = append(rc.Destinations, d)
	}
	return rc, Outcome{Kind: Accepted}
}

// resolveFinal is resolve for a recipient marked final: the one mailbox
// its address names (DetailAddresser.Mailbox), never an expansion of it.
func (a *LocalAgent) resolveFinal(ctx context.Context, address string) (Recipient, Outcome) {
	ctx, cancel := userdb.Bound(ctx, a.Directory)
	defer cancel()
	rc := Recipient{Address: address, ORCPT: address, Final: true}
	ud := userdb.Destination{Address: address, Local: true}
	if m, ok := a.Directory.(DetailAddresser); ok {
		var err error
		if ud, err = m.Mailbox(ctx, address); err != nil {
			return rc, outcomeOf(err)
		}
	}
	d, err := a.lookup(ctx, ud)
	if err != nil {
		return rc, outcomeOf(err)
	}
	rc.Destinations = []Destination{d}
	return rc, Outcome{Kind: Accepted}
}

// lookup completes a destination: a local one's account (maildir) and
// quota limit.
func (a *LocalAgent) lookup(ctx context.Context, ud userdb.Destination) (Destination, error) {
	d := Destination{Destination: ud}
	if !ud.Local {
		return d, nil
	}
	acct, err := a.Directory.Account(ctx, ud.Address)
	if err != nil {
		return d, err
	}
	d.Maildir = acct.Maildir
	if a.Quotas != nil {
		if d.Limit, err = a.Directory.QuotaLimit(ctx, ud.Address); err != nil {
			return d, err
		}
		d.limitKnown = true
	}
	return d, nil
}

func (a *LocalAgent) isFull(ctx context.Context, d Destination) (bool, error) {
	if d.Limit.Unlimited() {
		return false, nil
	}
	u, err := a.Quotas.Usage(ctx, d.Address)
	if err != nil {
		return false, err
	}
	l := d.Limit
	return (l.Bytes > 0 && u.Bytes >= l.Bytes) || (l.Messages > 0 && u.Messages >= l.Messages), nil
}

// trace is what the agent needs from the message header, read once.
type trace struct {
	hops        int
	deliveredTo map[string]bool
}

// maxHeaderScan bounds how much of a message is read looking for trace
// headers; a header larger than this is scanned no further.
const maxHeaderScan = 1 << 20

func readTrace(msg Message) trace {
	t := trace{deliveredTo: map[string]bool{}}
	br := bufio.NewReader(io.NewSectionReader(msg, 0, min(msg.Size(), maxHeaderScan)))
	for {
		line, err := br.ReadSlice('\n')
		if len(bytes.TrimRight(line, "\r\n")) == 0 && (err == nil || len(line) > 0) {
			return t // end of header
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if ok && line[0] != ' ' && line[0] != '\t' {
			switch strings.ToLower(string(bytes.TrimSpace(name))) {
			case "received":
				t.hops++
			case "delivered-to":
				v := strings.Trim(strings.TrimSpace(string(value)), "<>")
				if addr, err := userdb.Canonical(v); err == nil {
					t.deliveredTo[addr] = true
				}
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return t
		}
		for err == bufio.ErrBufferFull { // an overlong line: skip its rest
			_, err = br.ReadSlice('\n')
		}
	}
}

// readHeader parses the header for filters; a header it cannot read is
// given to them empty rather than failing the delivery.
func readHeader(msg Message) textproto.MIMEHeader {
	r := textproto.NewReader(bufio.NewReader(io.NewSectionReader(msg, 0, min(msg.Size(), maxHeaderScan))))
	h, _ := r.ReadMIMEHeader()
	if h == nil {
		h = textproto.MIMEHeader{}
	}
	return h
}

func (a *LocalAgent) filters() []Filter {
	if !a.Config.DetailFolders {
		return a.Filters
	}
	return append([]Filter{DetailFolders{}}, a.Filters...)
}

// timeout is the one deadline of a delivery.
func (a *LocalAgent) timeout() time.Duration {
	if a.Config.Timeout > 0 {
		return a.Config.Timeout
	}
	return DefaultTimeout
}

// Redeliver is the queue's hook for local recipients: bounces to our users,
// destinations that failed at first and fan-outs cut short by a crash,
// each with Address and the queue's Final mark (what the agent spooled it
// with). key is the queue item's id: a mailbox that already holds the copy
// written under that key is not written again. It returns one outcome per
// recipient; a partial failure of an alias is owned again, so an address
// that succeeded here is never retried.
func (a *LocalAgent) Redeliver(ctx context.Context, key, from string, rcpts []Recipient, msg []byte) []Outcome {
	env := Envelope{ID: key, From: from, Role: RoleQueue, Received: time.Now()}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, Recipient{Address: r.Address, ORCPT: r.Address, Final: r.Final})
	}
	return a.deliver(ctx, env, bytesMessage{bytes.NewReader(msg)}, key)
}

type bytesMessage struct{ *bytes.Reader }

func (m bytesMessage) Size() int64 { return m.Reader.Size() }

// storeOutcome classifies a store error once.
func (a *LocalAgent) storeOutcome(err error) Outcome {
	switch {
	case errors.Is(err, store.ErrOverQuota):
		if a.Config.OverQuotaTemporary {
			return Temp(MailboxFull)
		}
		return Perm(OverQuota)
	case errors.Is(err, syscall.ENOSPC):
		return Temp(DiskFull)
	case errors.Is(err, context.DeadlineExceeded):
		return Temp(TimedOut)
	}
	return Temp(StoreFailed)
}
