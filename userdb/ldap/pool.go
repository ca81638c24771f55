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

// dialer opens connections to the first configured server that answers.
type dialer struct {
	urls     []string
	startTLS bool
	tls      *tls.Config
	timeout  time.Duration
}

func (d *dialer) dial(ctx context.Context) (*goldap.Conn, error) {
	var errs []error
	for _, raw := range d.urls {
		c, err := d.dialOne(ctx, raw)
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

func (d *dialer) dialOne(ctx context.Context, raw string) (*goldap.Conn, error) {
	addr, ldaps, err := parseURL(raw)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
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
	c := goldap.NewConn(nc, ldaps)
	c.Start()
	c.SetTimeout(d.timeout)
	if d.startTLS && !ldaps {
		stop := context.AfterFunc(ctx, func() { c.Close() })
		err := c.StartTLS(tc)
		stop()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("starttls: %w", err)
		}
	}
	return c, nil
}

// pool is a bounded set of connections. At most size are in use or idle at
// any time; a caller beyond that waits (or gives up with its context).
type pool struct {
	d              *dialer
	bindDN, bindPW string // service bind for each new connection; "" = none
	log            *slog.Logger

	slots chan struct{} // one token per connection that may exist

	mu     sync.Mutex
	idle   []*goldap.Conn
	closed bool
}

func newPool(size int, d *dialer, bindDN, bindPW string, log *slog.Logger) *pool {
	return &pool{d: d, bindDN: bindDN, bindPW: bindPW, log: log, slots: make(chan struct{}, size)}
}

// get returns a connection: an idle one unless fresh is set, else a newly
// dialed and bound one. The caller must hand it back with put.
func (p *pool) get(ctx context.Context, fresh bool) (*goldap.Conn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a free connection: %w", ctx.Err())
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return nil, errClosed
	}
	for !fresh && len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		// The server closed it (restart, idle timeout): the reader
		// noticed EOF and marked it closing.
		if c.IsClosing() {
			go c.Close()
			continue
		}
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()

	c, err := p.d.dial(ctx)
	if err == nil && p.bindDN != "" {
		if err = c.Bind(p.bindDN, p.bindPW); err != nil {
			c.Close()
			err = fmt.Errorf("service bind as %q: %w", p.bindDN, err)
		}
	}
	if err != nil {
		<-p.slots
		return nil, err
	}
	return c, nil
}

// put returns a connection; a broken one is closed, and so are the idle
// ones, which most likely broke the same way (the server went away).
func (p *pool) put(c *goldap.Conn, broken bool) {
	p.mu.Lock()
	var drop []*goldap.Conn
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
	<-p.slots
	for _, c := range drop {
		c.Close()
	}
}

func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// do runs op on a pooled connection. When the connection fails at the
// network level (slapd restarted, a firewall cut an idle connection) it is
// discarded and op is retried once on a freshly dialed one. Only when that
// fails too, or no server can be reached, the result is ErrUnavailable.
//
// A retried write may have reached the server the first time; the callers'
// writes are replaces or report "exists"/"not found" precisely enough for
// an admin to see what happened.
func (s *Source) do(ctx context.Context, p *pool, op string, f func(*goldap.Conn) error) error {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return userdb.Unavailable(op, err)
		}
		c, err := p.get(ctx, attempt > 0)
		if err != nil {
			return userdb.Unavailable(op, err)
		}
		err = s.run(ctx, c, f)
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

// run bounds f by the configured timeout and by ctx: go-ldap has no
// context support, so cancellation closes the connection under f.
func (s *Source) run(ctx context.Context, c *goldap.Conn, f func(*goldap.Conn) error) error {
	timeout := s.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout = left
		}
	}
	if timeout <= 0 {
		return goldap.NewError(goldap.ErrorNetwork, context.DeadlineExceeded)
	}
	c.SetTimeout(timeout)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	err := f(c)
	if !stop() {
		// ctx ended while f ran; the connection is closed.
		return goldap.NewError(goldap.ErrorNetwork, ctx.Err())
	}
	return err
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
