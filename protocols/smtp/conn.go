package smtp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// listener hands go-smtp connections that are counted per client address,
// carry their own deadlines and context, and for implicit TLS are already
// wrapped in a TLS server (go-smtp does the handshake with its deadlines).
type listener struct {
	net.Listener
	srv         *Server
	implicitTLS bool
}

func (l *listener) Accept() (net.Conn, error) {
	s := l.srv
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(raw)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			raw.Close()
			continue
		}
		if ip.IsValid() && s.MaxConnsPerIP > 0 && s.perIP[ip] >= s.MaxConnsPerIP {
			s.mu.Unlock()
			s.log.Warn("too many connections", "client", ip.String(), "limit", s.MaxConnsPerIP)
			go l.refuse(raw)
			continue
		}
		tc := newTrackedConn(s, raw, ip)
		if ip.IsValid() {
			s.perIP[ip]++
		}
		s.conns[tc] = struct{}{}
		s.mu.Unlock()
		s.log.Debug("connected", "session", tc.id, "client", raw.RemoteAddr().String())
		if l.implicitTLS {
			return tls.Server(tc, s.tlsConf), nil
		}
		return tc, nil
	}
}

// refuse answers a connection over the per-address limit. On an implicit TLS
// port it just closes: a handshake per refused connection is what a flood
// would want us to spend.
func (l *listener) refuse(c net.Conn) {
	defer c.Close()
	if l.implicitTLS {
		return
	}
	c.SetWriteDeadline(time.Now().Add(min(l.srv.WriteTimeout, 10*time.Second)))
	c.Write([]byte("421 4.7.0 " + l.srv.Hostname + " Too many connections from your address, try again later\r\n"))
}

func remoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// trackedConn is the server's view of one client connection, below TLS. Its
// deadlines restart on every read and write, so ReadTimeout bounds each
// stall rather than the whole session or a whole message.
type trackedConn struct {
	net.Conn
	srv    *Server
	ip     netip.Addr
	id     string
	ctx    context.Context
	cancel context.CancelFunc
	start  time.Time

	// closeAfterWrite makes the next write (a final reply) close the
	// connection once it is on the wire.
	closeAfterWrite atomic.Bool

	mu      sync.Mutex
	inTx    bool // a transaction is between MAIL and its final reply
	closing bool
	once    sync.Once
}

func newTrackedConn(s *Server, c net.Conn, ip netip.Addr) *trackedConn {
	ctx, cancel := context.WithCancel(s.baseCtx)
	return &trackedConn{Conn: c, srv: s, ip: ip, id: newID(), ctx: ctx, cancel: cancel, start: time.Now()}
}

// newID returns a session id for logs and Received headers: 12 hex digits,
// unique enough to find one connection in a day of logs.
func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *trackedConn) Read(b []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.srv.ReadTimeout))
	return c.Conn.Read(b)
}

func (c *trackedConn) Write(b []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.srv.WriteTimeout))
	n, err := c.Conn.Write(b)
	if c.closeAfterWrite.Load() {
		c.Close()
	}
	return n, err
}

// SetReadDeadline and SetWriteDeadline are no-ops: Read and Write set their
// own, and go-smtp's fixed per-command deadlines would otherwise cut off a
// message that is still arriving.
func (c *trackedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *trackedConn) SetWriteDeadline(time.Time) error { return nil }
func (c *trackedConn) SetDeadline(time.Time) error      { return nil }

func (c *trackedConn) Close() error {
	var err error
	c.once.Do(func() {
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		c.cancel()
		err = c.Conn.Close()
		s := c.srv
		s.mu.Lock()
		delete(s.conns, c)
		if c.ip.IsValid() {
			if s.perIP[c.ip] <= 1 {
				delete(s.perIP, c.ip)
			} else {
				s.perIP[c.ip]--
			}
		}
		s.mu.Unlock()
		s.log.Debug("disconnected", "session", c.id, "duration", time.Since(c.start))
	})
	return err
}

// beginTx marks a transaction in flight, so Shutdown waits for it; it fails
// when the server is shutting down.
func (c *trackedConn) beginTx() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.srv.shuttingDown() {
		return false
	}
	c.inTx = true
	return true
}

func (c *trackedConn) endTx() {
	c.mu.Lock()
	c.inTx = false
	c.mu.Unlock()
}

func (c *trackedConn) closeIfIdle() {
	c.mu.Lock()
	idle := !c.inTx
	if idle {
		c.closing = true
	}
	c.mu.Unlock()
	if idle {
		c.Close()
	}
}
