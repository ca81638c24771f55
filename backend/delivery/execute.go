package delivery

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/vmaild/vmaild/backend/queue"
	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/userdb"
)

// job is one distinct destination of a delivery and what became of it.
type job struct {
	rcpt    *Recipient // the first recipient that reached it
	dest    Destination
	plan    Decision
	outcome Outcome
}

// ownTimeout bounds spooling failed destinations after the delivery's own
// deadline may have passed: they must still reach the queue.
const ownTimeout = 30 * time.Second

// run is one delivery in progress.
type run struct {
	env *Envelope
	msg Message
	// key names the copies written (store.Recipient.Key); once says a
	// copy under that key may already be there (a retry).
	key  string
	once bool
	// held is the queue item spooled before a fan-out; heldAddrs its
	// destinations and keep those it must go on delivering.
	held      string
	heldAddrs map[string]bool
	keep      []string
	// log names the delivery and the envelope's facts on every line.
	log *slog.Logger
	// deliveredTo are the addresses the message's Delivered-To fields
	// name: where it has been delivered or redirected from before.
	deliveredTo map[string]bool
}

// Deliver runs the three stages (package comment) under one deadline.
func (a *LocalAgent) Deliver(ctx context.Context, env Envelope, msg Message) []Outcome {
	return a.deliver(ctx, env, msg, "")
}

// deliver is Deliver; retryKey is the queue item being retried, if any.
func (a *LocalAgent) deliver(ctx context.Context, env Envelope, msg Message, retryKey string) []Outcome {
	ctx, cancel := context.WithTimeout(ctx, a.timeout())
	defer cancel()
	r := &run{env: &env, msg: msg, key: retryKey, once: retryKey != "", log: a.envLog(&env)}
	out := make([]Outcome, len(env.Recipients))
	tr := readTrace(msg)
	r.deliveredTo = tr.deliveredTo
	maxHops := a.Config.MaxHops
	if maxHops <= 0 {
		maxHops = 50
	}
	if tr.hops >= maxHops {
		r.log.Warn("mail loop: too many Received headers", "hops", tr.hops)
		for i := range out {
			out[i] = Perm(Loop)
		}
		return out
	}

	// resolve: what RCPT did not resolve already.
	perRcpt := make([][]*job, len(env.Recipients))
	byDest := map[string]*job{} // one copy per final mailbox
	var locals, remotes []*job
	for i := range env.Recipients {
		rc := &env.Recipients[i]
		if rc.Destinations == nil {
			resolve := a.resolve
			if rc.Final {
				resolve = a.resolveFinal
			}
			r, o := resolve(ctx, rc.Address)
			if o.Failed() {
				out[i] = o
				continue
			}
			rc.Destinations = r.Destinations
		}
		for _, d := range rc.Destinations {
			key := d.Address
			if !d.Local {
				key = "remote\x00" + key
			}
			j, ok := byDest[key]
			if !ok {
				j = &job{rcpt: rc, dest: d}
				byDest[key] = j
				if d.Local {
					locals = append(locals, j)
				} else {
					remotes = append(remotes, j)
				}
			}
			perRcpt[i] = append(perRcpt[i], j)
		}
	}

	a.plan(ctx, r, tr, locals)
	a.hold(ctx, r, locals)
	a.execute(ctx, r, locals, remotes)

	for i, js := range perRcpt {
		if len(js) > 0 {
			out[i] = a.settle(r, js)
		}
	}
	if env.OneReply {
		a.ownAcross(r, out, perRcpt)
	}
	if r.held != "" {
		if err := a.Queue.Release(r.held, r.keep); err != nil {
			r.log.Error("release the fan-out's queue item", "queue_id", r.held, "err", err)
		}
	}
	return out
}

// hold spools a fan-out to several mailboxes into the queue before any is
// written, under a key the copies carry: killed half way, the queue
// delivers the rest after a restart and skips the mailboxes that already
// have theirs.
func (a *LocalAgent) hold(ctx context.Context, r *run, locals []*job) {
	if a.Queue == nil || r.key != "" {
		return
	}
	var addrs []string
	for _, j := range locals {
		if j.outcome.Kind == Accepted && !j.plan.Discard {
			addrs = append(addrs, a.retryAddress(j).addr)
		}
	}
	if len(addrs) < 2 {
		return
	}
	// Every one is a local mailbox resolved here: final.
	id, err := a.Queue.EnqueueHeld(ctx, r.env.From, addrs, addrs, r.msg, r.msg.Size())
	if err != nil {
		// Delivered all the same, without the crash guard.
		r.log.Warn("cannot spool the fan-out before writing it", "err", err)
		return
	}
	r.held, r.key = id, id
	r.heldAddrs = make(map[string]bool, len(addrs))
	for _, ad := range addrs {
		r.heldAddrs[ad] = true
	}
}

// plan runs the filters for each local destination.
func (a *LocalAgent) plan(ctx context.Context, r *run, tr trace, locals []*job) {
	env, msg := r.env, r.msg
	filters := a.filters()
	var header map[string][]string
	for _, j := range locals {
		if tr.deliveredTo[j.dest.Address] || tr.deliveredTo[j.rcpt.Address] {
			j.outcome = Perm(Loop)
			r.log.Warn("mail loop: Delivered-To names the recipient", "rcpt", j.dest.Address)
			continue
		}
		if len(filters) == 0 {
			continue
		}
		if header == nil {
			header = readHeader(msg)
		}
		m := &Mail{Envelope: env, Recipient: j.rcpt, Destination: &j.dest, Header: header, Message: msg}
		for _, f := range filters {
			if err := f.Filter(ctx, m, &j.plan); err != nil {
				r.log.Warn("filter failed", "rcpt", j.dest.Address, "err", err)
				j.outcome = Temp(Rejected)
				j.outcome.Text = "filter failed, try again later"
				break
			}
		}
		if j.plan.Refuse.Failed() && j.outcome.Kind == Accepted {
			j.outcome = j.plan.Refuse
		}
	}
}

// execute writes the local copies, one file per distinct header prefix
// hard-linked into every mailbox, and queues remote destinations,
// redirects and replies.
func (a *LocalAgent) execute(ctx context.Context, r *run, locals, remotes []*job) {
	env, msg := r.env, r.msg
	groups := map[string][]*job{}
	var order []string
	var redirects []redirect
	for _, j := range locals {
		if j.outcome.Kind != Accepted {
			continue
		}
		if rd := a.redirect(r, j); len(rd.to) > 0 {
			redirects = append(redirects, rd)
		}
		for _, rp := range j.plan.Replies {
			if _, err := a.enqueue(ctx, "", []string{rp.To}, a.signReply(ctx, r, j.dest.Address, rp.Message)); err != nil {
				r.log.Error("queue reply", "to", rp.To, "err", err)
			} else if rp.Queued != nil {
				rp.Queued()
			}
		}
		if j.plan.Discard {
			j.outcome = Outcome{Kind: Delivered}
			r.log.Info("discarded by filter", "rcpt", j.dest.Address)
			continue
		}
		p := prefix(env, j, a.Config.DeliveredTo != "none")
		if _, ok := groups[p]; !ok {
			order = append(order, p)
		}
		groups[p] = append(groups[p], j)
	}
	a.writeLocal(ctx, r, order, groups)

	// Recipients outside our domains keep their sender; what an alias or
	// a filter forwards gets the forwarding sender (SRS).
	var relayed, forwarded []*job
	for _, j := range remotes {
		if j.rcpt.Address == j.dest.Address {
			relayed = append(relayed, j)
		} else {
			forwarded = append(forwarded, j)
		}
	}
	if len(relayed)+len(forwarded)+len(redirects) > 0 {
		msg = a.sign(ctx, r)
	}
	if env.RequireTLS {
		// The sender's REQUIRETLS goes with the message to every remote
		// destination, forwarded ones included (RFC 8689 section 4.1);
		// a reply written here is a new message and does not get it.
		ctx = queue.WithRequireTLS(ctx)
	}
	a.queueRemote(ctx, r, msg, env.From, relayed)
	fwdFrom := env.From
	if a.ForwardSender != nil && (len(forwarded) > 0 || len(redirects) > 0) {
		f, err := a.ForwardSender(ctx, env.From)
		if err != nil {
			r.log.Error("forwarding sender", "err", err)
			// A copy not queued is a copy lost: these recipients are
			// retried (a kept copy may then arrive twice, never zero times).
			for _, j := range forwarded {
				j.outcome = Temp(QueueFailed)
			}
			for _, rd := range redirects {
				rd.job.outcome = Temp(QueueFailed)
			}
			forwarded, redirects = nil, nil
		} else {
			fwdFrom = f
		}
	}
	a.queueRemote(ctx, r, msg, fwdFrom, forwarded)
	for _, rd := range redirects {
		// Delivered-To names who redirected it, as Postfix's local(8)
		// marks what it forwards: were the message to come back, it
		// is not redirected there again (redirect).
		id, err := a.enqueue(ctx, fwdFrom, rd.to, prefixed([]byte("Delivered-To: "+rd.by+"\r\n"), msg))
		if err != nil {
			// A redirect not queued is a copy lost: the recipient is
			// retried (a kept copy may then arrive twice, never zero times).
			r.log.Error("queue redirects", "rcpt", rd.by, "err", err)
			rd.job.outcome = Temp(QueueFailed)
			continue
		}
		r.log.Info("redirected", "rcpt", rd.by, "to", rd.to, "from", fwdFrom, "queue_id", id)
	}
}

// redirect is where a filter sends a destination's message on.
type redirect struct {
	job *job   // whose outcome waits on the redirect being queued
	by  string // the recipient that redirects
	to  []string
}

// redirect is j's redirects less those that would loop: an address the
// message was delivered or redirected to before (its Delivered-To), or
// the recipient itself. A message whose every redirect loops is kept in
// the mailbox instead of being discarded, as Pigeonhole keeps what it
// cannot redirect: a redirect loop between two users ends there.
func (a *LocalAgent) redirect(r *run, j *job) redirect {
	rd := redirect{job: j, by: j.rcpt.Address}
	looped := 0
	for _, to := range j.plan.Redirect {
		addr, err := userdb.Canonical(to)
		if err != nil {
			addr = strings.ToLower(to)
		}
		if r.deliveredTo[addr] || addr == j.rcpt.Address || addr == j.dest.Address {
			r.log.Warn("redirect loop: the message was here before; not redirected again", "rcpt", j.dest.Address, "to", to)
			looped++
			continue
		}
		rd.to = append(rd.to, to)
	}
	if looped > 0 && len(rd.to) == 0 && j.plan.Discard {
		j.plan.Discard = false
		r.log.Info("redirect loop: kept instead", "rcpt", j.dest.Address)
	}
	return rd
}

// sign is the message as it leaves for remote destinations: with the
// signature fields of LocalAgent.Sign on top when an authenticated user
// sent it, else unchanged.
func (a *LocalAgent) sign(ctx context.Context, r *run) Message {
	if a.Sign == nil || r.env.User == "" {
		return r.msg
	}
	h, err := a.Sign(ctx, r.env, r.msg)
	if err != nil {
		r.log.Error("signing failed; queued unsigned", "err", err)
		return r.msg
	}
	if len(h) == 0 {
		return r.msg
	}
	return prefixed(h, r.msg)
}

// signReply is a reply a filter wrote for the mailbox owner (a vacation
// notice): it leaves in the owner's name, so it is signed as mail the
// owner sent would be (RFC 5230's replies are signed like any other).
func (a *LocalAgent) signReply(ctx context.Context, r *run, owner string, reply []byte) Message {
	msg := bytesMessage{bytes.NewReader(reply)}
	if a.Sign == nil {
		return msg
	}
	h, err := a.Sign(ctx, &Envelope{ID: r.env.ID, User: owner, Role: r.env.Role}, msg)
	if err != nil {
		r.log.Error("signing a reply failed; queued unsigned", "owner", owner, "err", err)
		return msg
	}
	if len(h) == 0 {
		return msg
	}
	return prefixed(h, msg)
}

// queueRemote puts remote destinations into the queue as one item.
func (a *LocalAgent) queueRemote(ctx context.Context, r *run, msg Message, from string, js []*job) {
	if len(js) == 0 {
		return
	}
	addrs := make([]string, len(js))
	for i, j := range js {
		addrs[i] = j.dest.Address
	}
	o := Outcome{Kind: Queued}
	if a.Queue == nil {
		o = Perm(RelayDenied)
	} else if id, err := a.enqueue(ctx, from, addrs, msg); err != nil {
		r.log.Error("queue remote destinations", "err", err)
		o = Temp(QueueFailed)
	} else {
		r.log.Info("queued", "queue_id", id, "rcpts", len(addrs), "from", from)
	}
	for _, j := range js {
		j.outcome = o
	}
}

func (a *LocalAgent) enqueue(ctx context.Context, from string, rcpts []string, msg Message) (string, error) {
	if a.Queue == nil {
		return "", errors.New("no queue")
	}
	return a.Queue.EnqueueReaderAt(ctx, from, rcpts, msg, msg.Size())
}

// prefix is the header put on top of one local copy. Delivered-To names
// the address accepted at RCPT (Dovecot's lmtp_hdr_delivery_address =
// original): the copies of one alias are then the same file, and a copy
// names no other recipient of the message.
func prefix(env *Envelope, j *job, deliveredTo bool) string {
	var b strings.Builder
	b.WriteString("Return-Path: <" + env.From + ">\r\n")
	if deliveredTo {
		b.WriteString("Delivered-To: " + j.rcpt.Address + "\r\n")
	}
	for _, h := range j.plan.AddHeader {
		b.WriteString(h.Name + ": " + h.Value + "\r\n")
	}
	return b.String()
}

// writeLocal writes one file per header prefix, links it to every mailbox
// of its group and makes them all durable together; the store charges
// each quota on its own, in one transaction.
func (a *LocalAgent) writeLocal(ctx context.Context, r *run, prefixes []string, groups map[string][]*job) {
	msg := r.msg
	body := func(p string) io.Reader {
		return io.MultiReader(strings.NewReader(p), io.NewSectionReader(msg, 0, msg.Size()))
	}
	// Each job has one store.Recipient per copy (Decision.More); owner
	// maps them back.
	sg := make([]store.Group, len(prefixes))
	owner := make([][]*job, len(prefixes))
	for gi, p := range prefixes {
		var rcs []store.Recipient
		for _, j := range groups[p] {
			for _, rc := range a.storeRecipients(j) {
				rc.Key, rc.Once = r.key, r.once
				rcs = append(rcs, rc)
				owner[gi] = append(owner[gi], j)
			}
		}
		sg[gi] = store.Group{Recipients: rcs, Body: body(p)}
	}
	var res [][]store.Delivery
	if len(sg) == 1 && len(sg[0].Recipients) == 1 {
		d, err := a.Store.Deliver(ctx, sg[0].Recipients[0], sg[0].Body)
		d.Err = err
		res = [][]store.Delivery{{d}}
	} else if len(sg) > 0 {
		res = a.Store.DeliverGroups(ctx, sg)
	}
	// A job with a copy for INBOX needs no second one there when another
	// of its folders is missing.
	inbox := map[*job]bool{}
	for gi := range prefixes {
		for i, j := range owner[gi] {
			if sg[gi].Recipients[i].Folder == "" {
				inbox[j] = true
			}
		}
	}
	for gi, p := range prefixes {
		for i, j := range owner[gi] {
			rc, d := sg[gi].Recipients[i], res[gi][i]
			if rc.Folder != "" && errors.Is(d.Err, store.ErrNotFound) {
				if inbox[j] {
					r.log.Info("no such folder; the INBOX copy stands", "rcpt", j.dest.Address, "folder", rc.Folder)
					continue
				}
				rc.Folder, rc.Create = "", false // no such folder: INBOX
				inbox[j] = true
				d, d.Err = a.Store.Deliver(ctx, rc, body(p))
			}
			if d.Err != nil {
				if j.outcome.Kind == Accepted || j.outcome.Kind == Delivered {
					j.outcome = a.storeOutcome(d.Err)
				}
				r.log.Warn("local delivery failed", "rcpt", j.dest.Address, "folder", rc.Folder, "outcome", j.outcome.String(), "err", d.Err)
				continue
			}
			if j.outcome.Kind == Accepted {
				j.outcome = Outcome{Kind: Delivered}
			}
			r.log.Info("delivered", "rcpt", j.dest.Address, "size", d.Size, "folder", rc.Folder, "file", d.Name)
		}
	}
}

func (a *LocalAgent) storeRecipient(j *job) store.Recipient {
	rc := store.Recipient{Address: j.dest.Address, Maildir: j.dest.Maildir, Folder: j.plan.Folder, Flags: j.plan.Flags, Create: j.plan.Create}
	if a.Quotas != nil && j.dest.limitKnown {
		rc.Quota = store.UserdbQuota{Store: a.Quotas, Address: j.dest.Address, Limit: j.dest.Limit}
	}
	return rc
}

// storeRecipients are the copies a job writes: its Folder, then More.
func (a *LocalAgent) storeRecipients(j *job) []store.Recipient {
	first := a.storeRecipient(j)
	out := []store.Recipient{first}
	for _, c := range j.plan.More {
		rc := first
		rc.Folder, rc.Flags, rc.Create = c.Folder, c.Flags, c.Create
		out = append(out, rc)
	}
	return out
}

// settle decides one recipient's outcome from its destinations'. When
// some succeeded and others failed, the failed ones are queued for retry
// (or a bounce) on their own, so the sender is not asked to send again and
// nobody gets the message twice.
func (a *LocalAgent) settle(r *run, js []*job) Outcome {
	var firstTemp, firstPerm *Outcome
	var failed []*job
	delivered, queued := 0, 0
	for _, j := range js {
		switch o := &j.outcome; o.Kind {
		case Delivered:
			delivered++
		case Queued:
			queued++
		case Temporary:
			failed = append(failed, j)
			if firstTemp == nil {
				firstTemp = o
			}
		default:
			failed = append(failed, j)
			if firstPerm == nil {
				firstPerm = o
			}
		}
	}
	switch {
	case len(failed) == 0 && delivered > 0:
		return Outcome{Kind: Delivered}
	case len(failed) == 0:
		return Outcome{Kind: Queued}
	case delivered+queued == 0 && firstTemp != nil:
		return *firstTemp
	case delivered+queued == 0:
		return *firstPerm
	}
	retries := make([]retry, len(failed))
	for i, j := range failed {
		retries[i] = a.retryAddress(j)
	}
	if a.own(r, retries) {
		return Outcome{Kind: Queued}
	}
	// Not owned: the sender must retry, a duplicate rather than a loss.
	if firstTemp != nil {
		return *firstTemp
	}
	return Temp(QueueFailed)
}

// ownAcross applies settle's rule across the recipients of one reply:
// when one succeeded, the failed ones are queued.
func (a *LocalAgent) ownAcross(r *run, out []Outcome, perRcpt [][]*job) {
	env := r.env
	var retries []retry
	var idx []int
	anyOK := false
	for i, o := range out {
		if o.OK() {
			anyOK = true
			continue
		}
		idx = append(idx, i)
		if len(perRcpt[i]) == 0 {
			// Failed to resolve: the retry resolves it, unless it
			// was a final mailbox already.
			rc := env.Recipients[i]
			retries = append(retries, retry{addr: rc.Address, final: rc.Final})
			continue
		}
		for _, j := range perRcpt[i] {
			if j.outcome.Failed() {
				retries = append(retries, a.retryAddress(j))
			}
		}
	}
	if !anyOK || len(idx) == 0 {
		return
	}
	if a.own(r, retries) {
		for _, i := range idx {
			out[i] = Outcome{Kind: Queued}
		}
	}
}

// own makes the queue retry failed destinations until delivered, or
// bounce them (never to the null sender): those of a held fan-out stay in
// its item, the others are spooled (fsynced) as a new one, the final
// mailboxes marked so.
func (a *LocalAgent) own(r *run, retries []retry) bool {
	if a.Queue == nil || len(retries) == 0 {
		return false
	}
	var kept, rest, final []string
	for _, rt := range dedupe(retries) {
		switch {
		case r.heldAddrs[rt.addr]:
			kept = append(kept, rt.addr)
		case rt.final:
			final = append(final, rt.addr)
			fallthrough
		default:
			rest = append(rest, rt.addr)
		}
	}
	if len(rest) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), ownTimeout)
		defer cancel()
		id, err := a.Queue.EnqueueRetry(ctx, r.env.From, rest, final, r.msg, r.msg.Size())
		if err != nil {
			r.log.Error("cannot queue failed destinations", "rcpts", rest, "err", err)
			return false
		}
		r.log.Info("failed destinations queued for retry", "queue_id", id, "rcpts", rest, "final", final)
	}
	if len(kept) > 0 {
		r.keep = append(r.keep, kept...)
		r.log.Info("failed destinations kept queued for retry", "queue_id", r.held, "rcpts", kept)
	}
	return true
}

// DetailAddresser is a Directory that knows plus-addressing
// (userdb.Users): it names the address that resolves to a mailbox with a
// tag, user+tag@, and reads such an address back.
type DetailAddresser interface {
	DetailAddress(address, detail string) string
	// Mailbox is DetailAddress's inverse: the mailbox (and tag) an
	// address names, without expanding any alias.
	Mailbox(ctx context.Context, address string) (userdb.Destination, error)
}

// retry is a failed destination as the queue retries it.
type retry struct {
	addr string
	// final: addr is a mailbox resolved here, to be delivered to as it
	// is (Recipient.Final).
	final bool
}

// retryAddress is what the queue retries a destination as: a local one is
// its mailbox, final, with the +tag it was reached by, so that the retry
// (or the delivery after a crash, which looks for the copy where it was
// filed) plans the same folder.
func (a *LocalAgent) retryAddress(j *job) retry {
	if !j.dest.Local {
		return retry{addr: j.dest.Address}
	}
	if d, ok := a.Directory.(DetailAddresser); ok && j.dest.Detail != "" {
		return retry{addr: d.DetailAddress(j.dest.Address, j.dest.Detail), final: true}
	}
	return retry{addr: j.dest.Address, final: true}
}

// dedupe keeps the first retry of each address; one that is not final
// wins over a final one, since its resolution reaches the mailbox too.
func dedupe(rs []retry) []retry {
	at := map[string]int{}
	out := rs[:0:0]
	for _, rt := range rs {
		i, ok := at[rt.addr]
		if !ok {
			at[rt.addr] = len(out)
			out = append(out, rt)
			continue
		}
		out[i].final = out[i].final && rt.final
	}
	return out
}

// envLog is the agent's logger with the delivery's id and the envelope's
// facts.
func (a *LocalAgent) envLog(env *Envelope) *slog.Logger {
	attrs := []any{"id", env.ID, "role", env.Role}
	if env.ClientIP.IsValid() {
		attrs = append(attrs, "client", env.ClientIP.String())
	}
	if env.User != "" {
		attrs = append(attrs, "user", env.User)
	}
	return a.log().With(attrs...)
}
