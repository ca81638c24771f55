// Package testnet gives tests connections that come from addresses of
// their choosing (an IPv6 /64, many networks) over real loopback sockets:
// the server sees the chosen address as the peer, everything else is TCP.
package testnet

import (
	"net"
	"net/netip"
	"sync"
	"testing"
)

// Listener is a loopback TCP listener whose accepted connections report
// the address given to Dial as their remote address.
type Listener struct {
	net.Listener
	next   chan netip.Addr
	dialMu sync.Mutex
}

// Listen opens a Listener on 127.0.0.1; the test closes it at its end.
func Listen(t testing.TB) *Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := &Listener{Listener: l, next: make(chan netip.Addr, 1024)}
	t.Cleanup(func() { l.Close() })
	return tl
}

// Dial connects to the listener as from; the test closes the connection at
// its end. Dials are serialised so that accept order, which is the order
// the kernel completed the handshakes in, matches the order of addresses.
func (l *Listener) Dial(t testing.TB, from netip.Addr) net.Conn {
	t.Helper()
	l.dialMu.Lock()
	defer l.dialMu.Unlock()
	l.next <- from
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		<-l.next
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Accept returns the next connection with its chosen remote address;
// connections dialled some other way keep their own.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case from := <-l.next:
		port := c.RemoteAddr().(*net.TCPAddr).Port
		return &conn{Conn: c, remote: net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, uint16(port)))}, nil
	default:
		return c, nil
	}
}

type conn struct {
	net.Conn
	remote net.Addr
}

func (c *conn) RemoteAddr() net.Addr { return c.remote }
