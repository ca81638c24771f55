package gate

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"
)

// goodbyeGrace is how long past a limit a connection may still write (its
// protocol's goodbye) before the gate closes it whatever the protocol does.
const goodbyeGrace = 5 * time.Second

// Conn is a connection the gate admitted. Protocols read and write it as
// any net.Conn (usually below TLS), and tell the gate what happens on it:
// Authenticated, BeginData/EndData, Busy/Idle.
//
// The absolute limits (pre-auth lifetime, session, DATA, and shutdown for
// an idle connection) are enforced by clamping: every read deadline a
// protocol or library sets is moved back to the earliest limit, and every
// write deadline to that limit plus a short grace, so no library that
// restarts its deadlines (go-smtp does on every command) can extend them,
// and a read cut short by a limit fails as a timeout that the protocol
// answers in its own words, inside TLS when there is TLS. A timer closes
// the socket after the grace in case the protocol is not reading.
type Conn struct {
	net.Conn
	g       *Gate
	svc     *Service
	client  netip.Addr
	network netip.Prefix
	start   time.Time
	ctx     context.Context
	cancel  context.CancelFunc

	socketOnce  sync.Once
	releaseOnce sync.Once

	mu       sync.Mutex
	counted  bool // in the gate's unauthenticated count
	authed   bool
	preAuth  time.Time // when the pre-auth lifetime started: start, or the last Unauthenticated
	busy     bool
	stopping bool      // the gate is shutting down
	stopAt   time.Time // since when that ends the connection, once idle
	dataEnd  time.Time // end of the message transfer in progress
	readDL   time.Time // as the protocol set them
	writeDL  time.Time
	cutoff   time.Time // earliest limit now; zero: none
	limit    Reason    // the limit at cutoff
	timer    *time.Timer
	noted    bool // the limit that ended it was logged
	released bool
}

func newConn(g *Gate, raw net.Conn, svc *Service, client netip.Addr, network netip.Prefix) *Conn {
	now := time.Now()
	c := &Conn{Conn: raw, g: g, svc: svc, client: client, network: network, start: now, preAuth: now, counted: !svc.NoLogin}
	c.ctx, c.cancel = context.WithCancel(g.ctx)
	c.mu.Lock()
	c.applyLocked()
	c.mu.Unlock()
	return c
}

// ConnOf finds the gate's Conn under c, looking through TLS and any other
// wrapper that offers NetConn; nil if there is none.
func ConnOf(c net.Conn) *Conn {
	for c != nil {
		if gc, ok := c.(*Conn); ok {
			return gc
		}
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = w.NetConn()
	}
	return nil
}

// Client is the client's IP address; invalid for a unix-socket peer.
func (c *Conn) Client() netip.Addr { return c.client }

// Network is the client network the limits count the connection in; the
// zero Prefix for a unix-socket peer.
func (c *Conn) Network() netip.Prefix { return c.network }

// Context is cancelled when the connection is closed, by its protocol or
// by the gate; directory and store calls made for it should use it.
func (c *Conn) Context() context.Context { return c.ctx }

// Authenticated tells the gate the client has logged in: the pre-auth
// lifetime no longer applies and the connection leaves the unauthenticated
// count. Logging out again does not undo it.
func (c *Conn) Authenticated() {
	c.mu.Lock()
	if c.authed {
		c.mu.Unlock()
		return
	}
	c.authed = true
	wasCounted := c.counted && !c.released
	c.counted = false
	c.applyLocked()
	c.mu.Unlock()
	if wasCounted {
		c.g.authenticated()
	}
}

// Unauthenticated tells the gate a logged-in client logged out without
// closing the connection (IMAP's UNAUTHENTICATE, RFC 8437): it counts as
// not logged in again, and the pre-auth lifetime runs anew from now. It
// reports false, changing nothing, when the gate has no room for another
// client that has not logged in; the protocol then refuses the command.
func (c *Conn) Unauthenticated() bool {
	if c.svc.NoLogin {
		return true
	}
	c.mu.Lock()
	done := !c.authed || c.released
	c.mu.Unlock()
	if done {
		return true
	}
	if !c.g.unauthenticated() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		// Closed meanwhile: Close did not count us, so give the
		// place back.
		c.g.authenticated()
		return true
	}
	c.authed, c.counted, c.preAuth = false, true, time.Now()
	c.applyLocked()
	return true
}

// BeginData starts a message transfer, which must end within MaxData.
func (c *Conn) BeginData() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.g.cfg.MaxData > 0 {
		c.dataEnd = time.Now().Add(c.g.cfg.MaxData)
		c.applyLocked()
	}
}

// EndData ends the message transfer.
func (c *Conn) EndData() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dataEnd.IsZero() {
		c.dataEnd = time.Time{}
		c.applyLocked()
	}
}

// Busy marks work in flight that Shutdown waits for (a command, an SMTP
// transaction). It reports false when the gate is shutting down: the work
// must not start, the protocol says goodbye instead.
func (c *Conn) Busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return false
	}
	c.busy = true
	return true
}

// Idle marks the end of the work in flight: the connection waits for its
// client. A new connection is idle. While the gate shuts down, reads of an
// idle connection fail at once as timeouts, and Expired says Shutdown.
func (c *Conn) Idle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.busy {
		c.busy = false
		if c.stopping {
			// Shutdown ends the connection from now, with the grace
			// for its goodbye counted from now too.
			c.stopAt = time.Now()
			c.applyLocked()
		}
	}
}

// stop is Shutdown's word to the connection.
func (c *Conn) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopping, c.stopAt = true, time.Now()
	c.applyLocked()
}

// Expired names the limit that has cut the connection short, or "" while
// none has. A protocol asks when a read times out, to say goodbye in the
// right words.
func (c *Conn) Expired() Reason {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cutoff.IsZero() || time.Now().Before(c.cutoff) {
		return ""
	}
	return c.limit
}

// SetDeadline sets both deadlines, each clamped to the limits.
func (c *Conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDL, c.writeDL = t, t
	if err := c.Conn.SetReadDeadline(c.readClampLocked()); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(c.writeClampLocked())
}

// SetReadDeadline sets the read deadline, or the earliest limit if that
// comes first (a zero t included).
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDL = t
	return c.Conn.SetReadDeadline(c.readClampLocked())
}

// SetWriteDeadline sets the write deadline, or the earliest limit plus a
// grace for a goodbye if that comes first.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeDL = t
	return c.Conn.SetWriteDeadline(c.writeClampLocked())
}

func (c *Conn) readClampLocked() time.Time { return clamp(c.readDL, c.cutoff) }

func (c *Conn) writeClampLocked() time.Time {
	if c.cutoff.IsZero() {
		return c.writeDL
	}
	return clamp(c.writeDL, c.cutoff.Add(c.g.grace))
}

// clamp is the earlier of deadline and limit, where zero means none.
func clamp(deadline, limit time.Time) time.Time {
	if limit.IsZero() || (!deadline.IsZero() && deadline.Before(limit)) {
		return deadline
	}
	return limit
}

// applyLocked recomputes the earliest limit after a change of state and
// moves the socket's deadlines and the closing timer to it. A limit that
// has passed stays: nothing the client does afterwards lifts it.
func (c *Conn) applyLocked() {
	if c.released {
		return
	}
	now := time.Now()
	if c.cutoff.IsZero() || now.Before(c.cutoff) {
		c.cutoff, c.limit = c.limitsLocked()
	}
	c.Conn.SetReadDeadline(c.readClampLocked())
	c.Conn.SetWriteDeadline(c.writeClampLocked())
	if c.cutoff.IsZero() {
		if c.timer != nil {
			c.timer.Stop()
		}
		return
	}
	d := c.cutoff.Add(c.g.grace).Sub(now)
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.overdue)
	} else {
		c.timer.Reset(d)
	}
}

// limitsLocked is the earliest limit that applies now.
func (c *Conn) limitsLocked() (time.Time, Reason) {
	var at time.Time
	var why Reason
	consider := func(t time.Time, r Reason) {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at, why = t, r
		}
	}
	cfg := &c.g.cfg
	if cfg.MaxSession > 0 {
		consider(c.start.Add(cfg.MaxSession), LimitSession)
	}
	if !c.authed && !c.svc.NoLogin && cfg.PreAuthLifetime > 0 {
		consider(c.preAuth.Add(cfg.PreAuthLifetime), LimitPreAuth)
	}
	consider(c.dataEnd, LimitData)
	if c.stopping && !c.busy {
		consider(c.stopAt, Shutdown)
	}
	return at, why
}

// overdue runs a grace after the earliest limit: the protocol has had its
// chance to say goodbye; the socket is closed now.
func (c *Conn) overdue() {
	c.mu.Lock()
	due := !c.released && !c.cutoff.IsZero() && !time.Now().Before(c.cutoff.Add(c.g.grace))
	c.mu.Unlock()
	if due {
		c.note()
		c.closeSocket()
	}
}

// note logs and counts the limit that ended the connection, once.
func (c *Conn) note() {
	c.mu.Lock()
	r := Reason("")
	if !c.noted && !c.cutoff.IsZero() && !time.Now().Before(c.cutoff) {
		r, c.noted = c.limit, true
	}
	c.mu.Unlock()
	if r == "" || r == Shutdown {
		return
	}
	c.g.log.Info("connection closed by limit", "listener", c.svc.Name, "client", addrString(c.client, c.Conn),
		"network", c.network.String(), "limit", string(r), "duration", time.Since(c.start).Round(time.Millisecond))
	if c.g.Refused != nil {
		c.g.Refused(c.svc.Name, r)
	}
}

// closeSocket closes the socket and cancels the context; the connection
// stays counted until its protocol closes it too.
func (c *Conn) closeSocket() error {
	var err error
	c.socketOnce.Do(func() {
		c.cancel()
		err = c.Conn.Close()
	})
	return err
}

// Close closes the connection and releases its place at the gate.
func (c *Conn) Close() error {
	err := c.closeSocket()
	c.releaseOnce.Do(func() {
		c.note()
		c.mu.Lock()
		if c.timer != nil {
			c.timer.Stop()
		}
		wasCounted := c.counted
		c.counted, c.released = false, true
		c.mu.Unlock()
		c.g.forget(c, wasCounted)
	})
	return err
}
