package smtp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmaild/vmaild/protocols/gate"
)

// listener hands go-smtp the gate's connections wrapped with their own
// deadlines and context, and for implicit TLS already wrapped in a TLS
// server (go-smtp does the handshake with its deadlines).
type listener struct {
	net.Listener // the gate's
	srv          *Server
	implicitTLS  bool
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	s := l.srv
	tc := newTrackedConn(s, c.(*gate.Conn))
	s.log.Debug("connected", "session", tc.id, "client", c.RemoteAddr().String())
	if l.implicitTLS {
		return tls.Server(tc, s.tlsConf), nil
	}
	return tc, nil
}

// trackedConn is the server's view of one client connection, below TLS.
// Between messages go-smtp's own read deadline stands: it sets one before
// every command line, so the whole line must arrive in time, however it
// is dripped. Within a message the deadline restarts on every read, so
// ReadTimeout bounds each stall and the gate's max_data the whole transfer.
// Writes restart theirs on every write. The gate clamps all of them to its
// absolute limits.
type trackedConn struct {
	*gate.Conn
	srv   *Server
	ip    netip.Addr
	id    string
	ctx   context.Context
	start time.Time

	// closeAfterWrite makes the next write (a final reply) close the
	// connection once it is on the wire.
	closeAfterWrite atomic.Bool

	mu           sync.Mutex
	inData       bool  // a message is being received
	dataReturned bool  // its Data call returned; go-smtp may still drain it
	timeout      error // the first read timeout, returned by every later read
	once         sync.Once
}

func newTrackedConn(s *Server, c *gate.Conn) *trackedConn {
	return &trackedConn{Conn: c, srv: s, ip: c.Client(), id: newID(), ctx: c.Context(), start: time.Now()}
}

// newID returns a session id for logs and Received headers: 12 hex digits,
// unique enough to find one connection in a day of logs.
func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Read reads from the client. A timeout is final: go-smtp reads lines
// through bufio and textproto, which hand over a partial line as a whole
// one when the read under it fails, and go-smtp would then restart its
// deadline and read on, so a client dripping bytes would see each
// deadline turn its fragment into a command. With the timeout sticky, the
// fragment is answered and the next read ends the session with 421.
func (c *trackedConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if c.timeout != nil {
		c.mu.Unlock()
		return 0, c.timeout
	}
	if c.inData {
		c.Conn.SetReadDeadline(time.Now().Add(c.srv.ReadTimeout))
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(b)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.mu.Lock()
		c.timeout = err
		c.mu.Unlock()
	}
	return n, err
}

func (c *trackedConn) Write(b []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.srv.WriteTimeout))
	n, err := c.Conn.Write(b)
	if c.closeAfterWrite.Load() {
		c.Close()
	}
	return n, err
}

// SetReadDeadline takes go-smtp's deadline for the next command line. Within
// a message it is ignored (go-smtp's would cut off a message still
// arriving); the first one after the message's Data call returned, which
// comes with the next command, ends the message.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inData {
		if !c.dataReturned {
			return nil
		}
		c.endDataLocked()
	}
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline is a no-op: Write sets its own.
func (c *trackedConn) SetWriteDeadline(time.Time) error { return nil }

func (c *trackedConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// Close logs the end of the session, then lets the gate release it: the
// gate's Shutdown and Close return only after every log line of it.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.srv.log.Debug("disconnected", "session", c.id, "duration", time.Since(c.start))
	})
	return c.Conn.Close()
}

// beginTx marks a transaction in flight, so Shutdown waits for it; it fails
// when the server is shutting down.
func (c *trackedConn) beginTx() bool { return c.Conn.Busy() }

func (c *trackedConn) endTx() { c.Conn.Idle() }

// beginData starts receiving a message.
func (c *trackedConn) beginData() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inData, c.dataReturned = true, false
	c.Conn.BeginData()
}

// endData ends it once the message has been read whole.
func (c *trackedConn) endData() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endDataLocked()
}

func (c *trackedConn) endDataLocked() {
	if c.inData {
		c.inData = false
		c.Conn.EndData()
	}
}

// dataDone notes that Data returned; when it did so before reading the
// whole message, go-smtp drains the rest still within the message's limits.
func (c *trackedConn) dataDone() {
	c.mu.Lock()
	c.dataReturned = true
	c.mu.Unlock()
}
