package delivery

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/userdb"
)

// Mailstore writes one local copy durably: nil means the copy is on disk,
// and the recipient's quota was charged atomically before it became
// visible. *store.Store implements it.
type Mailstore interface {
	Deliver(ctx context.Context, rc store.Recipient, r io.Reader) (store.Delivery, error)
}

// Queue takes remote destinations durably: nil means the message is in the
// spool. backend/queue implements it.
type Queue interface {
	EnqueueReaderAt(ctx context.Context, from string, rcpts []string, msg io.ReaderAt, size int64) (string, error)
}

// Config is the agent's policy. Zero values are sensible.
type Config struct {
	// MaxHops is the Received-header count at which a message is taken to
	// be looping (Postfix's hopcount_limit). Default 50.
	MaxHops int `yaml:"max_hops" help:"Received headers at which a message is taken to loop"`
	// OverQuotaTemporary answers a message that does not fit a mailbox
	// with 452 4.2.2 (the sender retries) instead of 552 5.2.2 (bounce).
	OverQuotaTemporary bool `yaml:"over_quota_temporary" help:"answer over-quota messages with 452 (retry) instead of 552 (bounce)"`
	// DetailFolders delivers user+tag@ into the folder named tag when it
	// exists (otherwise INBOX).
	DetailFolders bool `yaml:"detail_folders" help:"deliver user+tag@ into the folder named tag when it exists"`
}

// LocalAgent is the vmaild MDA.
type LocalAgent struct {
	Directory userdb.Directory
	// Quotas keeps usage; nil: nothing is accounted or enforced.
	Quotas userdb.QuotaStore
	Store  Mailstore
	// Queue receives remote destinations; nil refuses them temporarily.
	Queue  Queue
	Config Config
	Logger *slog.Logger
}

var _ Agent = (*LocalAgent)(nil)

func (a *LocalAgent) log() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// statusOf maps a directory error to the reply a front end gives.
func statusOf(err error) Status {
	switch {
	case err == nil:
		return Accepted
	case userdb.Temporary(err):
		return DirectoryDown
	case errors.Is(err, userdb.ErrAliasLoop):
		return AliasLoop
	case errors.Is(err, userdb.ErrDisabled):
		return Disabled
	case errors.Is(err, userdb.ErrInvalid):
		return BadAddress
	case errors.Is(err, userdb.ErrNotFound):
		return NoSuchUser
	}
	// An error of unknown class is an internal failure: never bounce on it.
	return DirectoryDown
}

// CheckRecipient resolves rcpt and refuses it when every local mailbox it
// reaches is already full.
func (a *LocalAgent) CheckRecipient(ctx context.Context, rcpt string) Status {
	dests, err := a.Directory.Resolve(ctx, rcpt)
	if err != nil {
		return statusOf(err)
	}
	if a.Quotas == nil {
		return Accepted
	}
	full := 0
	locals := 0
	for _, d := range dests {
		if !d.Local {
			continue
		}
		locals++
		isFull, err := a.isFull(ctx, d.Address)
		if err != nil {
			return DirectoryDown
		}
		if isFull {
			full++
		}
	}
	if locals > 0 && full == locals && locals == len(dests) {
		return MailboxFull
	}
	return Accepted
}

func (a *LocalAgent) isFull(ctx context.Context, address string) (bool, error) {
	limit, err := a.Directory.QuotaLimit(ctx, address)
	if err != nil {
		return false, err
	}
	if limit.Unlimited() {
		return false, nil
	}
	u, err := a.Quotas.Usage(ctx, address)
	if err != nil {
		return false, err
	}
	return (limit.Bytes > 0 && u.Bytes >= limit.Bytes) || (limit.Messages > 0 && u.Messages >= limit.Messages), nil
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

// Deliver resolves every recipient, then writes each distinct local mailbox
// once and queues all remote destinations in one spool entry.
func (a *LocalAgent) Deliver(ctx context.Context, env Envelope, msg Message) []Status {
	out := make([]Status, len(env.Recipients))
	tr := readTrace(msg)
	maxHops := a.Config.MaxHops
	if maxHops <= 0 {
		maxHops = 50
	}
	if tr.hops >= maxHops {
		a.log().Warn("mail loop: too many Received headers", "id", env.ID, "hops", tr.hops)
		for i := range out {
			out[i] = LoopDetected
		}
		return out
	}

	type target struct {
		dest   userdb.Destination
		status Status
	}
	perRcpt := make([][]*target, len(env.Recipients))
	mailboxes := map[string]*target{} // one copy per final mailbox
	var remote []*target
	var remoteAddrs []string
	for i, rcpt := range env.Recipients {
		dests, err := a.Directory.Resolve(ctx, rcpt)
		if err != nil {
			out[i] = statusOf(err)
			continue
		}
		for _, d := range dests {
			if !d.Local {
				t, ok := mailboxes["remote\x00"+d.Address]
				if !ok {
					t = &target{dest: d}
					mailboxes["remote\x00"+d.Address] = t
					remote = append(remote, t)
					remoteAddrs = append(remoteAddrs, d.Address)
				}
				perRcpt[i] = append(perRcpt[i], t)
				continue
			}
			t, ok := mailboxes[d.Address]
			if !ok {
				t = &target{dest: d}
				mailboxes[d.Address] = t
				if tr.deliveredTo[d.Address] {
					t.status = LoopDetected
					a.log().Warn("mail loop: Delivered-To names the recipient", "id", env.ID, "rcpt", d.Address)
				} else {
					t.status = a.deliverLocal(ctx, env, msg, d)
				}
			}
			perRcpt[i] = append(perRcpt[i], t)
		}
	}
	if len(remote) > 0 {
		st := Queued
		if a.Queue == nil {
			st = RelayNotAllowed
		} else if id, err := a.Queue.EnqueueReaderAt(ctx, env.From, remoteAddrs, msg, msg.Size()); err != nil {
			a.log().Error("queue remote destinations", "id", env.ID, "err", err)
			st = QueueFailed
		} else {
			a.log().Info("queued", "id", env.ID, "queue_id", id, "rcpts", len(remoteAddrs))
		}
		for _, t := range remote {
			t.status = st
		}
	}
	for i, ts := range perRcpt {
		if len(ts) == 0 {
			continue
		}
		out[i] = combine(ts, func(t *target) Status { return t.status })
	}
	return out
}

// combine decides one recipient's status from its destinations'. Any
// success makes the recipient a success only when nothing failed
// temporarily: a temporary failure beside successes is answered as
// temporary, so the sender retries and nothing is lost (the mailboxes that
// already have the message get it twice: a duplicate, never a loss).
func combine[T any](ts []T, status func(T) Status) Status {
	var firstOK, firstTemp, firstPerm *Status
	for _, t := range ts {
		s := status(t)
		switch {
		case s.OK():
			if firstOK == nil {
				firstOK = &s
			}
		case s.Temporary():
			if firstTemp == nil {
				firstTemp = &s
			}
		default:
			if firstPerm == nil {
				firstPerm = &s
			}
		}
	}
	switch {
	case firstTemp != nil:
		return *firstTemp
	case firstOK != nil:
		return *firstOK
	default:
		return *firstPerm
	}
}

// deliverLocal writes the copy with its Return-Path and Delivered-To
// headers; the store charges the quota in the same step, so an over-quota
// message leaves nothing behind.
func (a *LocalAgent) deliverLocal(ctx context.Context, env Envelope, msg Message, d userdb.Destination) Status {
	acct, err := a.Directory.Account(ctx, d.Address)
	if err != nil {
		return statusOf(err)
	}
	rc := store.Recipient{Address: d.Address, Maildir: acct.Maildir}
	if a.Quotas != nil {
		limit, err := a.Directory.QuotaLimit(ctx, d.Address)
		if err != nil {
			return statusOf(err)
		}
		rc.Quota = store.UserdbQuota{Store: a.Quotas, Address: d.Address, Limit: limit}
	}
	prefix := "Return-Path: <" + env.From + ">\r\nDelivered-To: " + d.Address + "\r\n"
	body := func() io.Reader {
		return io.MultiReader(strings.NewReader(prefix), io.NewSectionReader(msg, 0, msg.Size()))
	}
	if a.Config.DetailFolders && d.Detail != "" {
		rc.Folder = d.Detail
	}
	dl, err := a.Store.Deliver(ctx, rc, body())
	if rc.Folder != "" && errors.Is(err, store.ErrNotFound) {
		rc.Folder = "" // no folder named by the tag: INBOX
		dl, err = a.Store.Deliver(ctx, rc, body())
	}
	switch {
	case errors.Is(err, store.ErrOverQuota):
		a.log().Info("over quota", "id", env.ID, "rcpt", d.Address, "size", msg.Size())
		if a.Config.OverQuotaTemporary {
			return MailboxFull
		}
		return TooBigForQuota
	case errors.Is(err, store.ErrInvalid):
		a.log().Error("local delivery refused by the store", "id", env.ID, "rcpt", d.Address, "err", err)
		return StoreFailed
	case err != nil:
		a.log().Error("local delivery", "id", env.ID, "rcpt", d.Address, "err", err)
		return StoreFailed
	}
	a.log().Info("delivered", "id", env.ID, "rcpt", d.Address, "size", dl.Size, "folder", rc.Folder, "file", dl.Name)
	return Delivered
}
