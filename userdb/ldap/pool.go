package ldap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/vmaild/vmaild/userdb"
)

// errClosed is what requests get after Source.Close.
var errClosed = errors.New("ldap source closed")

// dialer opens connections to the first configured server that answers,
// bound as the service account.
type dialer struct {
	urls           []string
	startTLS       bool
	tls            *tls.Config
	bindDN, bindPW string // service bind for each new connection; "" = none
	// timeout bounds one connection attempt, also for a caller without
	// a deadline of its own.
	timeout time.Duration
}

// conn is one pooled connection: go-ldap's client and the socket under
// it. Giving up on a connection closes the socket: that ends every read
// and write at once, where go-ldap's own Close first waits for the server
// to take an unbind, which a hung server never does.
type conn struct {
	*goldap.Conn
	nc net.Conn
}

// discard closes c without waiting for the server.
func (c *conn) discard() {
	c.nc.Close()
	go c.Conn.Close() // reaps go-ldap's goroutines; the socket is gone already
}

// dial tries the servers in order, within the timeout or ctx, whichever
// ends first. Each server gets an equal share of the time left, so a hung
// first server (one that accepts but never answers) cannot use up the time
// the next one needs.
func (d *dialer) dial(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	var errs []error
	for i, raw := range d.urls {
		share := time.Until(dl) / time.Duration(len(d.urls)-i)
		dctx, cancel := context.WithTimeout(ctx, share)
		c, err := d.dialOne(dctx, raw)
		cancel()
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", raw, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// dialOne connects, upgrades with StartTLS if configured and binds as the
// service account, all within ctx.
func (d *dialer) dialOne(ctx context.Context, raw string) (*conn, error) {
	addr, ldaps, err := parseURL(raw)
	if err != nil {
		return nil, err
	}
	tc := d.tls.Clone()
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(addr)
	}
	var nc net.Conn
	if ldaps {
		nc, err = (&tls.Dialer{Config: tc}).DialContext(ctx, "tcp", addr)
	} else {
		nc, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: goldap.NewConn(nc, ldaps), nc: nc}
	c.Start()
	if d.startTLS && !ldaps {
		if err := guard(ctx, c, d.timeout, func(l *goldap.Conn) error { return l.StartTLS(tc) }); err != nil {
			c.discard()
			return nil, fmt.Errorf("starttls: %w", err)
		}
	}
	if d.bindDN != "" {
		err := guard(ctx, c, d.timeout, func(l *goldap.Conn) error { return l.Bind(d.bindDN, d.bindPW) })
		if err != nil {
			c.discard()
			return nil, fmt.Errorf("service bind as %q: %w", d.bindDN, err)
		}
	}
	return c, nil
}

// guard runs f on c within ctx, each request f makes bounded by limit and
// by ctx's deadline: go-ldap has no context support, so the time left
// becomes its request timeout, and cancellation closes the socket under
// f. A connection that saw either is broken (connectionError), and is
// discarded, never pooled again: a late answer to the abandoned request
// may still be on its way.
func guard(ctx context.Context, c *conn, limit time.Duration, f func(*goldap.Conn) error) error {
	if dl, ok := ctx.Deadline(); ok {
		limit = min(limit, time.Until(dl))
	}
	if limit <= 0 {
		return goldap.NewError(goldap.ErrorNetwork, context.DeadlineExceeded)
	}
	c.SetTimeout(limit)
	stop := context.AfterFunc(ctx, func() { c.nc.Close() })
	err := f(c.Conn)
	if !stop() {
		// ctx ended while f ran; the socket is closed.
		return goldap.NewError(goldap.ErrorNetwork, context.Cause(ctx))
	}
	return err
}

// pool is a bounded set of connections. At most size are in use or idle at
// any time; a caller beyond that waits, within its context.
type pool struct {
	d   *dialer
	log *slog.Logger

	slots *slots // one per connection that may exist, in use or idle

	mu     sync.Mutex
	idle   []*conn
	closed bool
}

func newPool(size int, d *dialer, log *slog.Logger) *pool {
	return &pool{d: d, log: log, slots: newSlots(size)}
}

// get returns a connection: an idle one unless fresh is set, else a newly
// dialed and bound one. Waiting for a free slot and dialing both end with
// ctx. The caller must hand the connection back with put.
func (p *pool) get(ctx context.Context, fresh bool) (*conn, error) {
	if err := p.slots.acquire(ctx); err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.slots.release()
		return nil, errClosed
	}
	for !fresh && len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		// The server closed it (restart, idle timeout): the reader
		// noticed EOF and marked it closing.
		if c.IsClosing() {
			c.discard()
			continue
		}
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()

	c, err := p.d.dial(ctx)
	if err != nil {
		p.slots.release()
		return nil, err
	}
	return c, nil
}

// put returns a connection; a broken one is discarded, and so are the idle
// ones, which most likely broke the same way (the server went away or
// hangs).
func (p *pool) put(c *conn, broken bool) {
	p.mu.Lock()
	var drop []*conn
	if broken || p.closed {
		drop = append(drop, c)
		if broken {
			drop = append(drop, p.idle...)
			p.idle = nil
		}
	} else {
		p.idle = append(p.idle, c)
	}
	p.mu.Unlock()
	p.slots.release()
	for _, c := range drop {
		c.discard()
	}
}

func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.discard()
	}
}

// bound gives one directory operation its deadline: Timeout from now, or
// the caller's deadline if that comes first. Everything the operation
// does (waiting for a pooled connection, dialing, the service bind, the
// request, a retry) happens within it, so a caller hears back within
// Timeout however many others are waiting and however the server fails.
func (s *Source) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, s.cfg.Timeout,
		fmt.Errorf("ldap: no answer within the timeout (%v): %w", s.cfg.Timeout, context.DeadlineExceeded))
}

// do runs op on a pooled connection within the operation's deadline. When
// the connection fails at the network level (slapd restarted, a firewall
// cut an idle connection) it is discarded and op is retried once on a
// freshly dialed one, if time is left. Only when that fails too, or no
// server can be reached in time, the result is ErrUnavailable.
//
// A retried write may have reached the server the first time; the callers'
// writes are replaces or report "exists"/"not found" precisely enough for
// an admin to see what happened.
func (s *Source) do(ctx context.Context, p *pool, op string, f func(*goldap.Conn) error) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.attempt(ctx, p, op, f)
}

// attempt is do without the operation's deadline, for listings whose
// length depends on the directory's size: each request of f is still
// bounded by the timeout, the whole only by ctx.
func (s *Source) attempt(ctx context.Context, p *pool, op string, f func(*goldap.Conn) error) error {
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return userdb.Unavailable(op, context.Cause(ctx))
		}
		c, err := p.get(ctx, attempt > 0)
		if err != nil {
			return userdb.Unavailable(op, err)
		}
		err = guard(ctx, c, s.cfg.Timeout, f)
		broken := err != nil && connectionError(err)
		p.put(c, broken)
		if !broken {
			return err
		}
		if attempt > 0 || ctx.Err() != nil {
			return userdb.Unavailable(op, err)
		}
		p.log.Warn("ldap connection failed, retrying on a new one", "op", op, "err", err)
	}
}

// connectionError reports whether err means the connection is unusable:
// anything that is not an LDAP result from the server, and the client-side
// codes go-ldap uses for network trouble and timeouts.
func connectionError(err error) bool {
	var le *goldap.Error
	if !errors.As(err, &le) {
		return true
	}
	switch le.ResultCode {
	case goldap.ErrorNetwork, goldap.ErrorUnexpectedMessage, goldap.ErrorUnexpectedResponse,
		goldap.ErrorMalformedPacket, goldap.LDAPResultServerDown, goldap.LDAPResultConnectError,
		goldap.LDAPResultTimeout:
		return true
	}
	return false
}

// classify turns an LDAP error into one of userdb's classes, keeping the
// cause for the log.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, userdb.ErrUnavailable) {
		return err
	}
	var le *goldap.Error
	if !errors.As(err, &le) {
		return fmt.Errorf("%s: %w", op, err)
	}
	switch le.ResultCode {
	case goldap.LDAPResultNoSuchObject:
		return fmt.Errorf("%s: %w: %w", op, userdb.ErrNotFound, err)
	case goldap.LDAPResultEntryAlreadyExists:
		return fmt.Errorf("%s: %w: %w", op, userdb.ErrExists, err)
	case goldap.LDAPResultInvalidCredentials, goldap.LDAPResultInappropriateAuthentication:
		return fmt.Errorf("%s: %w: %w", op, userdb.ErrBadCredentials, err)
	case goldap.LDAPResultBusy, goldap.LDAPResultUnavailable, goldap.LDAPResultTimeLimitExceeded,
		goldap.LDAPResultAdminLimitExceeded, goldap.LDAPResultOther:
		// The server is there but cannot answer now.
		return userdb.Unavailable(op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}
