package testsrv

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy relays TCP connections to a real server and holds back what the
// server sends by a settable latency: a slow server (or a slow link) with
// the real one behind it, so a test can make slapd or mariadbd answer
// late without touching them.
type Proxy struct {
	// Addr is where clients connect (127.0.0.1:<port>).
	Addr string

	target string
	ln     net.Listener
	delay  atomic.Int64 // time.Duration

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StartProxy listens on a free loopback port and relays to target
// (host:port). It is closed when the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// SetDelay sets the latency added to every chunk the server sends from
// now on; 0 relays at once.
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := newDialer().Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(client, server) {
			return
		}
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			relay(server, client, nil)
		}()
		go func() {
			defer p.wg.Done()
			relay(client, server, &p.delay)
		}()
	}
}

// track remembers a pair for close; false when the proxy is closing.
func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

// chunk is what one read from the source returned, and when it is due.
type chunk struct {
	b   []byte
	due time.Time
}

// relay copies src to dst, each chunk held back by delay (nil: none) from
// the moment it was read, in order, until either side fails; then it
// closes both.
func relay(dst, src net.Conn, delay *atomic.Int64) {
	defer dst.Close()
	defer src.Close()
	chunks := make(chan chunk, 64)
	go func() {
		defer close(chunks)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				var d time.Duration
				if delay != nil {
					d = time.Duration(delay.Load())
				}
				chunks <- chunk{b[:n], time.Now().Add(d)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.b); err != nil {
			src.Close()
			for range chunks {
			}
			return
		}
	}
}

func (p *Proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	p.wg.Wait()
}
