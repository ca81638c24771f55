// Package scriptconn is a net.Conn for tests and fuzz targets that drive a
// server with a fixed client script: reads return the script, in pieces of
// a chosen size, then io.EOF (the client has sent everything and shut its
// side); writes are collected for the test to inspect. Deadlines do not
// apply, so a server under test never waits for a timer and one input
// always runs to its end at full speed.
package scriptconn

import (
	"bytes"
	"io"
	"net"
	"sync"
	"time"
)

// Conn is the server's end of a scripted connection.
type Conn struct {
	// Remote is the client's address (default Addr, which is no IP
	// address); set it before the server sees the connection.
	Remote net.Addr

	mu     sync.Mutex
	in     []byte
	chunk  int
	out    bytes.Buffer
	closed bool
	done   chan struct{}
}

// New returns a connection whose client sends script, at most chunk octets
// per read (0: as many as the reader asks for).
func New(script []byte, chunk int) *Conn {
	return &Conn{in: script, chunk: chunk, done: make(chan struct{})}
}

// Read returns the next piece of the script, io.EOF after it, and
// net.ErrClosed once the connection is closed.
func (c *Conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	if c.chunk > 0 && len(p) > c.chunk {
		p = p[:c.chunk]
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

// Write collects what the server sends.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.out.Write(p)
}

// Output is everything written so far.
func (c *Conn) Output() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes())
}

// Close closes the connection; Done is closed then.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.done)
	}
	return nil
}

// Done is closed when the server closes the connection.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Addr is the address of both ends: not an IP address, so a server sees
// no client network to apply per-address limits to.
var Addr net.Addr = addr{}

type addr struct{}

func (addr) Network() string { return "script" }
func (addr) String() string  { return "script" }

func (c *Conn) LocalAddr() net.Addr { return Addr }
func (c *Conn) RemoteAddr() net.Addr {
	if c.Remote != nil {
		return c.Remote
	}
	return Addr
}
func (c *Conn) SetDeadline(t time.Time) error      { return nil }
func (c *Conn) SetReadDeadline(t time.Time) error  { return nil }
func (c *Conn) SetWriteDeadline(t time.Time) error { return nil }

// Listener hands a server the connections sent on it, like a net.Listener
// fed by a test.
type Listener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

// NewListener returns an open Listener.
func NewListener() *Listener {
	return &Listener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

// Dial hands c to the server's next Accept; it reports false once the
// listener is closed.
func (l *Listener) Dial(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		return false
	}
}

// Accept waits for the next connection passed to Dial.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close makes Accept and Dial fail from now on.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr is the listener's address.
func (l *Listener) Addr() net.Addr { return Addr }
