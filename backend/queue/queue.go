// Package queue is vmaild's outbound mail queue: a durable spool of messages
// for remote recipients, and the delivery workers that hand them to the
// recipients' MX hosts (or a smarthost), retry on temporary failures and
// send RFC 3464 delivery status notifications (bounces) on permanent ones.
//
// A message is accepted by Enqueue only once it and its envelope are on
// disk (file and directory fsynced), so the SMTP layer may answer 250 as
// soon as Enqueue returns. Each spooled item is two files in the spool
// directory:
//
//	<id>.msg    envelope header line + the message, written once
//	<id>.state  per-recipient delivery state, replaced atomically
//
// A missing .state file means "nothing attempted yet". Items that cannot be
// read back are moved to corrupt/ with a log line, never dropped.
package queue

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"
)

// Errors returned by the queue. Use Temporary to classify any error from
// Enqueue: the SMTP layer answers 4xx when it is true, 5xx otherwise.
var (
	// ErrInvalid: the envelope cannot be queued (bad address, no recipient).
	ErrInvalid = errors.New("queue: invalid envelope")
	// ErrNotFound: no queued item has that id.
	ErrNotFound = errors.New("queue: no such item")
	// ErrClosed: the queue is shut down.
	ErrClosed = errors.New("queue: closed")
	// ErrHeld: the item is on the admin's hold (Hold).
	ErrHeld = errors.New("queue: item is on hold")
	// ErrLocked: another Queue (maybe another process) owns the spool.
	ErrLocked = errors.New("queue: spool is locked by another queue")
)

// Temporary reports whether an error from Enqueue means "try again later"
// (disk full, I/O error, queue shutting down) rather than "never".
func Temporary(err error) bool {
	return err != nil && !errors.Is(err, ErrInvalid)
}

// Smarthost replaces MX lookup: every message goes to this one relay.
type Smarthost struct {
	// Addr is host:port of the relay.
	Addr string
	// Username and Password, when Username is set, authenticate with AUTH
	// PLAIN. Credentials are only ever sent over TLS.
	Username, Password string
	// ImplicitTLS connects with TLS from the first byte (port 465);
	// otherwise STARTTLS is required.
	ImplicitTLS bool
	// InsecureSkipVerify accepts any certificate from the relay (for a
	// relay on a private network with a self-signed certificate).
	InsecureSkipVerify bool
	// RootCAs, when set, verifies the relay's certificate against these
	// roots instead of Config.TLSConfig's (or the system's): the CA of a
	// relay with a private certificate.
	RootCAs *x509.CertPool
	// PlainText talks to the relay without TLS (a content filter on
	// loopback). Not allowed together with credentials.
	PlainText bool
}

// Config configures a Queue. Only Dir is required; every other zero value
// picks a working default.
type Config struct {
	// Dir is the spool directory (created if missing).
	Dir string
	// Hostname is the HELO/EHLO name and the Reporting-MTA of bounces.
	// Default: os.Hostname().
	Hostname string

	// Resolver is the DNS server (host:port) for MX and A/AAAA lookups.
	// Default: the first nameserver of /etc/resolv.conf.
	Resolver string
	// DNSTimeout bounds one DNS query. Default 5s.
	DNSTimeout time.Duration
	// Port is the SMTP port of MX hosts. Default 25.
	Port int
	// Dial opens connections to MX hosts and the smarthost, e.g. to bind
	// a source address. Default: a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ConnectTimeout bounds connecting to one address. Default 30s.
	ConnectTimeout time.Duration
	// CommandTimeout bounds waiting for one SMTP reply. Default 5m
	// (RFC 5321 4.5.3.2).
	CommandTimeout time.Duration
	// DataTimeout bounds waiting for the reply to the final dot.
	// Default 10m.
	DataTimeout time.Duration
	// TLSConfig is the base TLS configuration for STARTTLS to MX hosts and
	// the smarthost (RootCAs, client certificates). TLS 1.2 is the floor.
	// Its RootCAs (nil: the system's) are the trust roots of every
	// verified connection: MX hosts under MTA-STS or level verify, and
	// the HTTPS servers MTA-STS policies are fetched from.
	TLSConfig *tls.Config
	// DisableSTARTTLS turns opportunistic STARTTLS to MX hosts off
	// (level none for destinations that have no other policy).
	DisableSTARTTLS bool
	// TLSPolicy is the per-destination table (ParseTLSPolicyTable); a
	// destination it names gets that level instead of the automatic
	// policy: DANE when the MX host has DNSSEC-validated TLSA records,
	// else MTA-STS when the domain publishes a policy, else may.
	TLSPolicy TLSPolicyTable
	// DisableDANE stops looking up TLSA records (RFC 7672). DANE needs a
	// Resolver that validates DNSSEC and sets the AD bit.
	DisableDANE bool
	// DisableMTASTS stops looking up MTA-STS policies (RFC 8461).
	DisableMTASTS bool
	// MTASTSTimeout bounds fetching one MTA-STS policy. Default 30s.
	MTASTSTimeout time.Duration
	// Smarthost, when set, replaces MX lookup.
	Smarthost *Smarthost

	// Workers bounds concurrent SMTP transactions. Default 32.
	Workers int
	// PerDomain bounds concurrent transactions to one destination domain
	// (or to the smarthost). Default 8.
	PerDomain int

	// Retry is the delay before each retry: Retry[0] after the first
	// failed attempt, and so on, the last entry repeating. When empty the
	// delay doubles from RetryMin up to RetryMax.
	Retry []time.Duration
	// RetryMin and RetryMax bound the exponential backoff. Defaults 5m, 4h.
	RetryMin, RetryMax time.Duration
	// MaxAge is how long a message may stay queued before its pending
	// recipients fail permanently. Default 5 days (RFC 5321 4.5.4.1).
	MaxAge time.Duration

	// LocalDomain and Local deliver to recipients this server hosts
	// itself, instead of looking up MX records (which would point back at
	// us): bounces to local senders and the destinations the delivery
	// agent queued for retry. Both or neither must be set. Local gets
	// copies of the recipients to deliver, of which only Addr and Final
	// are meant for it. An error from Local is temporary unless it has a
	// Temporary() bool method returning false or is an *smtp.SMTPError
	// with a 5xx code.
	LocalDomain func(domain string) bool
	Local       func(ctx context.Context, from string, rcpts []Recipient, msg []byte) error

	// BounceTo, when set, names the address the DSN for a message from
	// sender goes to; "" keeps sender. cmd/vmaild reverses the SRS
	// senders of mail it forwarded (backend/srs), so the bounce goes to
	// the original sender instead of a round trip through our own MX.
	BounceTo func(sender string) string

	// SignDSN, when set, returns header fields (DKIM-Signature) to put
	// on top of a bounce this queue writes, given the bounce. An error is
	// logged and the bounce sent unsigned.
	SignDSN func(dsn []byte) ([]byte, error)

	// Logger receives one line per delivery attempt, and spool problems.
	// nil discards.
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Dir == "" {
		return errors.New("queue: Config.Dir is empty")
	}
	if (c.LocalDomain == nil) != (c.Local == nil) {
		return errors.New("queue: Config.LocalDomain and Config.Local go together")
	}
	if sh := c.Smarthost; sh != nil {
		if _, _, err := net.SplitHostPort(sh.Addr); err != nil {
			return fmt.Errorf("queue: Smarthost.Addr %q: %w", sh.Addr, err)
		}
		if sh.PlainText && (sh.Username != "" || sh.ImplicitTLS) {
			return errors.New("queue: Smarthost.PlainText excludes credentials and ImplicitTLS")
		}
		if sh.InsecureSkipVerify && sh.RootCAs != nil {
			return errors.New("queue: Smarthost.InsecureSkipVerify and RootCAs exclude each other")
		}
	}
	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		c.Hostname = h
	}
	if c.DNSTimeout <= 0 {
		c.DNSTimeout = 5 * time.Second
	}
	if c.Port == 0 {
		c.Port = 25
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 30 * time.Second
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = 5 * time.Minute
	}
	if c.DataTimeout <= 0 {
		c.DataTimeout = 10 * time.Minute
	}
	if c.Dial == nil {
		d := &net.Dialer{}
		c.Dial = d.DialContext
	}
	if c.Workers <= 0 {
		c.Workers = 32
	}
	if c.PerDomain <= 0 {
		c.PerDomain = 8
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 5 * time.Minute
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 4 * time.Hour
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = c.RetryMin
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 5 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// backoff is the delay after the n-th failed attempt (n >= 1).
func (c *Config) backoff(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	if len(c.Retry) > 0 {
		return c.Retry[min(n, len(c.Retry))-1]
	}
	d := c.RetryMin
	for i := 1; i < n && d < c.RetryMax; i++ {
		d *= 2
	}
	return min(d, c.RetryMax)
}

// Queue is the outbound queue. Create it with New, run it with Start, stop
// it with Shutdown. All methods are safe for concurrent use.
type Queue struct {
	cfg   Config
	log   *slog.Logger
	spool *spool
	dns   *resolver
	// policy decides the TLS of each delivery to an MX host.
	policy *tlsPolicy

	mu       sync.Mutex
	items    map[string]*item
	timers   timerHeap
	ready    map[string][]*job // per destination, FIFO
	order    []string          // destinations with ready jobs, round robin
	running  int
	perDest  map[string]int
	started  bool
	closing  bool
	wake     chan struct{}
	stop     chan struct{}
	jobCtx   context.Context
	cancel   context.CancelFunc
	inflight sync.WaitGroup
	loopDone chan struct{}
	rng      *rand.Rand

	stats Stats
}

// New opens (creating if needed) the spool in cfg.Dir, takes its lock and
// loads every spooled item. Nothing is delivered until Start.
func New(cfg Config) (*Queue, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	sp, err := openSpool(cfg.Dir, cfg.Logger)
	if err != nil {
		return nil, err
	}
	res, err := newResolver(cfg.Resolver, cfg.DNSTimeout)
	if err != nil && cfg.Smarthost == nil {
		sp.close()
		return nil, err
	}
	q := &Queue{
		cfg:     cfg,
		policy:  newTLSPolicy(&cfg, res),
		log:     cfg.Logger,
		spool:   sp,
		dns:     res,
		items:   make(map[string]*item),
		ready:   make(map[string][]*job),
		perDest: make(map[string]int),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		rng:     rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	loaded, err := sp.load()
	if err != nil {
		sp.close()
		return nil, err
	}
	for _, it := range loaded {
		q.items[it.ID] = it
	}
	return q, nil
}

// Start schedules every loaded item and starts delivering. Cancelling ctx
// aborts attempts in flight (as Shutdown's deadline does).
func (q *Queue) Start(ctx context.Context) error {
	q.mu.Lock()
	if q.closing {
		q.mu.Unlock()
		return ErrClosed
	}
	if q.started {
		q.mu.Unlock()
		return errors.New("queue: already started")
	}
	q.started = true
	q.jobCtx, q.cancel = context.WithCancel(ctx)
	q.loopDone = make(chan struct{})
	var settle []*item
	for _, it := range q.items {
		q.scheduleLocked(it)
		if it.needsSettle() {
			settle = append(settle, it)
		}
	}
	q.mu.Unlock()
	// Items that crashed between a permanent failure and its bounce get
	// their bounce now.
	for _, it := range settle {
		q.settle(it)
	}
	go q.loop()
	return nil
}

// Shutdown stops starting attempts, waits for attempts in flight until ctx
// is done, then aborts the rest (their recipients stay pending) and
// releases the spool. Enqueue fails with ErrClosed afterwards.
func (q *Queue) Shutdown(ctx context.Context) error {
	q.mu.Lock()
	if q.closing {
		q.mu.Unlock()
		return nil
	}
	q.closing = true
	started := q.started
	q.mu.Unlock()
	close(q.stop)
	var err error
	if started {
		<-q.loopDone
		done := make(chan struct{})
		go func() { q.inflight.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("queue shutdown: %w", ctx.Err())
			q.cancel()
			<-done
		}
		q.cancel()
	}
	q.spool.close()
	return err
}

// Enqueue spools a message for the recipients and returns its queue id
// once it is durably on disk. from may be "" (null reverse-path).
func (q *Queue) Enqueue(ctx context.Context, from string, rcpts []string, msg io.Reader) (string, error) {
	return q.enqueue(ctx, from, rcpts, msg, -1, false)
}

// EnqueueBytes is Enqueue for a message already in memory.
func (q *Queue) EnqueueBytes(ctx context.Context, from string, rcpts []string, msg []byte) (string, error) {
	// bytes.Reader has WriteTo, so the spool writes it in one call.
	return q.enqueue(ctx, from, rcpts, bytes.NewReader(msg), int64(len(msg)), false)
}

// EnqueueReaderAt is Enqueue for a message already spooled elsewhere (the
// SMTP layer's temporary file); size is its length.
func (q *Queue) EnqueueReaderAt(ctx context.Context, from string, rcpts []string, msg io.ReaderAt, size int64) (string, error) {
	return q.enqueue(ctx, from, rcpts, io.NewSectionReader(msg, 0, size), size, false)
}

// EnqueueHeld spools a message whose recipients the caller is delivering
// itself (the delivery agent's fan-out to local mailboxes): nothing is
// attempted until Release says which recipients are still to do. After a
// crash the item is an ordinary one and every recipient is delivered by
// the local hook, which recognises the copies already written by the
// item's id (ItemID). The recipients in final are marked so
// (Recipient.Final).
func (q *Queue) EnqueueHeld(ctx context.Context, from string, rcpts, final []string, msg io.ReaderAt, size int64) (string, error) {
	return q.enqueueItem(ctx, from, rcpts, final, io.NewSectionReader(msg, 0, size), size, false, true)
}

// EnqueueRetry is EnqueueReaderAt for destinations that a delivery could
// not finish: the recipients in final are marked so (Recipient.Final),
// and the local hook gets them back marked on every retry.
func (q *Queue) EnqueueRetry(ctx context.Context, from string, rcpts, final []string, msg io.ReaderAt, size int64) (string, error) {
	return q.enqueueItem(ctx, from, rcpts, final, io.NewSectionReader(msg, 0, size), size, false, false)
}

// Release ends the hold on an item from EnqueueHeld: the recipients in
// keep are queued as usual (retried, bounced), the others are done. With
// nothing to keep the item is removed.
func (q *Queue) Release(id string, keep []string) error {
	want := make(map[string]bool, len(keep))
	for _, k := range keep {
		want[k] = true
	}
	q.mu.Lock()
	it := q.items[id]
	if it == nil || !it.held {
		q.mu.Unlock()
		return fmt.Errorf("release %s: %w", id, ErrNotFound)
	}
	it.held = false
	kept := 0
	for i := range it.rcpts {
		r := &it.rcpts[i]
		if want[r.Addr] && r.State == Pending {
			kept++
			continue
		}
		if r.State == Pending {
			r.State, r.LastReply, r.Status, r.RemoteMTA = Delivered, "delivered by the agent", "2.0.0", "local"
		}
	}
	q.mu.Unlock()
	if kept == 0 {
		q.settle(it) // nothing pending: removes the item
		return nil
	}
	q.persist(it)
	q.mu.Lock()
	if q.started && !q.closing {
		q.scheduleLocked(it)
		q.poke()
	}
	q.mu.Unlock()
	return nil
}

type itemIDKey struct{}

type requireTLSKey struct{}

// WithRequireTLS marks what is enqueued with ctx as a REQUIRETLS message
// (RFC 8689): it is delivered only over TLS that DANE or MTA-STS
// authenticates, to servers that take REQUIRETLS on, or bounced. It
// travels in the context so that the layers between the SMTP session
// and the queue (the delivery agent) need no new parameter.
func WithRequireTLS(ctx context.Context) context.Context {
	return context.WithValue(ctx, requireTLSKey{}, true)
}

// RequireTLS reports whether ctx carries WithRequireTLS's mark.
func RequireTLS(ctx context.Context) bool {
	v, _ := ctx.Value(requireTLSKey{}).(bool)
	return v
}

// ItemID is the id of the queued item whose local delivery Config.Local
// was called for, read from its context; "" elsewhere.
func ItemID(ctx context.Context) string {
	id, _ := ctx.Value(itemIDKey{}).(string)
	return id
}

func (q *Queue) enqueue(ctx context.Context, from string, rcpts []string, msg io.Reader, size int64, bounce bool) (string, error) {
	return q.enqueueItem(ctx, from, rcpts, nil, msg, size, bounce, false)
}

func (q *Queue) enqueueItem(ctx context.Context, from string, rcpts, final []string, msg io.Reader, size int64, bounce, held bool) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("enqueue: %w", err)
	}
	env, err := newEnvelope(from, rcpts, final, bounce)
	if err != nil {
		return "", err
	}
	env.RequireTLS = RequireTLS(ctx)
	q.mu.Lock()
	closed := q.closing
	q.mu.Unlock()
	if closed {
		return "", ErrClosed
	}
	it, err := q.spool.write(ctx, env, msg, size)
	if err != nil {
		return "", err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items[it.ID] = it
	q.stats.Enqueued++
	it.held = held
	if q.started && !q.closing {
		q.scheduleLocked(it)
		q.poke()
	}
	q.log.Info("queued", "queue_id", it.ID, "from", from, "nrcpt", len(rcpts), "size", it.Size, "bounce", bounce, "held", held, "final", len(env.Final), "requiretls", env.RequireTLS)
	return it.ID, nil
}
