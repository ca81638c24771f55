package gate

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/testnet"
)

// lineServer is a toy line protocol behind a gate, shaped like the real
// ones: it restarts a long read deadline before every line (as go-smtp
// does), answers "OK" to every line, and on a timeout says goodbye with
// the gate's reason. Lines: AUTH logs in, BUSY starts work in flight,
// IDLE ends it, DATA starts a message transfer, END ends it.
type lineServer struct {
	g    *Gate
	tl   *testnet.Listener
	wg   sync.WaitGroup
	done chan error
}

func startLineServer(t *testing.T, g *Gate, svc Service) *lineServer {
	t.Helper()
	if svc.Name == "" {
		svc.Name = "toy"
	}
	if svc.Refusal == nil {
		svc.Refusal = func(text string) string { return "NO " + text + "\r\n" }
	}
	s := &lineServer{g: g, tl: testnet.Listen(t), done: make(chan error, 1)}
	gl, err := g.Listen(s.tl, svc)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := gl.Accept()
			if err != nil {
				s.done <- err
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				serveLines(c.(*Conn))
			}()
		}
	}()
	t.Cleanup(func() {
		g.Close()
		s.wg.Wait()
	})
	return s
}

func serveLines(c *Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	c.SetWriteDeadline(time.Now().Add(time.Hour))
	io.WriteString(c, "HELLO\r\n")
	for {
		c.SetReadDeadline(time.Now().Add(time.Hour))
		line, err := br.ReadString('\n')
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				io.WriteString(c, "BYE "+string(c.Expired())+"\r\n")
			}
			return
		}
		switch strings.TrimSpace(line) {
		case "AUTH":
			c.Authenticated()
		case "UNAUTH":
			if !c.Unauthenticated() {
				io.WriteString(c, "NO room\r\n")
				continue
			}
		case "BUSY":
			if !c.Busy() {
				io.WriteString(c, "BYE busy refused\r\n")
				return
			}
		case "IDLE":
			c.Idle()
		case "DATA":
			c.BeginData()
		case "END":
			c.EndData()
		case "QUIT":
			return
		}
		c.SetWriteDeadline(time.Now().Add(time.Hour))
		io.WriteString(c, "OK\r\n")
	}
}

// client is one test connection.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (s *lineServer) dial(t *testing.T, from string) *client {
	t.Helper()
	c := s.tl.Dial(t, netip.MustParseAddr(from))
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

func (c *client) line() string {
	c.t.Helper()
	l, err := c.br.ReadString('\n')
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.TrimRight(l, "\r\n")
}

func (c *client) send(s string) string {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s+"\r\n"); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
	return c.line()
}

// admitted dials and reports whether the gate let the client in.
func (s *lineServer) admitted(t *testing.T, from string) (*client, bool) {
	t.Helper()
	c := s.dial(t, from)
	switch l := c.line(); {
	case l == "HELLO":
		return c, true
	case strings.HasPrefix(l, "NO "):
		return c, false
	default:
		t.Fatalf("from %s: greeting %q", from, l)
	}
	return nil, false
}

func TestPerNetworkCap(t *testing.T) {
	g := &Gate{Limits: Config{MaxPerNetwork: 3}}
	s := startLineServer(t, g, Service{})
	var first *client
	// Three addresses of one /64 fill it; a fourth, anywhere in the same
	// /64, is refused.
	for i, from := range []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff:ffff:ffff:ffff"} {
		c, ok := s.admitted(t, from)
		if !ok {
			t.Fatalf("connection %d from %s refused", i+1, from)
		}
		if first == nil {
			first = c
		}
	}
	if c, ok := s.admitted(t, "2001:db8:1:2:abcd::99"); ok {
		t.Fatal("fourth connection from the same /64 admitted")
	} else if l := c.line(); !strings.HasPrefix(l, "error") {
		t.Errorf("refused connection still open: %q", l)
	}
	// Other /64s, even next door, and IPv4 addresses are networks of
	// their own.
	for _, from := range []string{"2001:db8:1:3::1", "2001:db8:1:1::1", "192.0.2.1", "192.0.2.1", "192.0.2.1", "192.0.2.2"} {
		if _, ok := s.admitted(t, from); !ok {
			t.Errorf("connection from %s refused", from)
		}
	}
	if _, ok := s.admitted(t, "192.0.2.1"); ok {
		t.Error("fourth connection from one IPv4 address admitted")
	}
	// A place freed is a place taken.
	first.send("QUIT")
	waitFor(t, func() bool {
		c, ok := s.admitted(t, "2001:db8:1:2::7")
		if ok {
			c.send("QUIT")
		}
		return ok
	})
}

// Exempt networks (a webmail, a proxy) are not capped per network.
func TestExemptNetworks(t *testing.T) {
	g := &Gate{Limits: Config{MaxPerNetwork: 1, ExemptNetworks: []string{"192.0.2.0/24", "2001:db8:5::/48", "not a prefix"}}}
	s := startLineServer(t, g, Service{})
	for _, from := range []string{"192.0.2.1", "192.0.2.1", "192.0.2.7", "2001:db8:5:1::1", "2001:db8:5:1::1", "198.51.100.1"} {
		if _, ok := s.admitted(t, from); !ok {
			t.Errorf("connection from %s refused", from)
		}
	}
	if _, ok := s.admitted(t, "198.51.100.1"); ok {
		t.Error("second connection from a network that is not exempt admitted")
	}
}

func TestNetworksPrefixes(t *testing.T) {
	g := &Gate{Limits: Config{MaxPerNetwork: 1, Networks: Networks{IPv4Prefix: 24, IPv6Prefix: 48}}}
	s := startLineServer(t, g, Service{})
	if _, ok := s.admitted(t, "2001:db8:1:2::1"); !ok {
		t.Fatal("first refused")
	}
	if _, ok := s.admitted(t, "2001:db8:1:3::1"); ok {
		t.Error("second connection of one /48 admitted")
	}
	if _, ok := s.admitted(t, "192.0.2.1"); !ok {
		t.Fatal("first IPv4 refused")
	}
	if _, ok := s.admitted(t, "192.0.2.200"); ok {
		t.Error("second connection of one IPv4 /24 admitted")
	}
}

func TestGlobalCap(t *testing.T) {
	g := &Gate{Limits: Config{MaxConnections: 2}}
	s := startLineServer(t, g, Service{})
	a, _ := s.admitted(t, "192.0.2.1")
	if _, ok := s.admitted(t, "198.51.100.1"); !ok {
		t.Fatal("second refused")
	}
	c, ok := s.admitted(t, "203.0.113.1")
	if ok {
		t.Fatal("third admitted over max_connections 2")
	}
	if c == nil {
		t.Fatal("no client")
	}
	a.send("AUTH") // logging in does not free a place in the global cap
	if _, ok := s.admitted(t, "203.0.113.2"); ok {
		t.Fatal("admitted over max_connections after a login")
	}
}

func TestUnauthenticatedCap(t *testing.T) {
	g := &Gate{Limits: Config{MaxUnauthenticated: 2}}
	s := startLineServer(t, g, Service{})
	mta := startLineServer(t, g, Service{Name: "mta", NoLogin: true})

	a, _ := s.admitted(t, "192.0.2.1")
	s.admitted(t, "192.0.2.2")
	if _, ok := s.admitted(t, "192.0.2.3"); ok {
		t.Fatal("third client waiting to log in admitted over max_unauthenticated 2")
	}
	// Clients of a listener without logins are not counted, nor refused.
	if _, ok := mta.admitted(t, "198.51.100.1"); !ok {
		t.Fatal("MTA client refused by the unauthenticated cap")
	}
	// A login frees its place.
	if got := a.send("AUTH"); got != "OK" {
		t.Fatalf("AUTH: %q", got)
	}
	waitFor(t, func() bool {
		_, ok := s.admitted(t, "192.0.2.4")
		return ok
	})
}

// A client that logs out without closing (IMAP's UNAUTHENTICATE) counts
// as not logged in again, is refused while there is no room for one, and
// its pre-auth lifetime runs anew.
func TestUnauthenticatedAgain(t *testing.T) {
	const lifetime = time.Second
	g := &Gate{Limits: Config{MaxUnauthenticated: 1, PreAuthLifetime: lifetime}}
	s := startLineServer(t, g, Service{})
	a, _ := s.admitted(t, "192.0.2.1")
	if got := a.send("AUTH"); got != "OK" {
		t.Fatalf("AUTH: %q", got)
	}
	b, _ := s.admitted(t, "192.0.2.2") // the one place for a client not logged in
	if got := a.send("UNAUTH"); got != "NO room" {
		t.Fatalf("UNAUTH with no room: %q", got)
	}
	if got := b.send("AUTH"); got != "OK" {
		t.Fatalf("AUTH: %q", got)
	}
	time.Sleep(lifetime + 100*time.Millisecond) // past the first pre-auth lifetime
	if got := a.send("UNAUTH"); got != "OK" {
		t.Fatalf("UNAUTH: %q", got)
	}
	if _, ok := s.admitted(t, "192.0.2.3"); ok {
		t.Fatal("a client admitted while an unauthenticated one holds the only place")
	}
	start := time.Now()
	var last string
	for time.Since(start) < 20*time.Second {
		if last = a.send(""); last != "OK" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last != "BYE "+string(LimitPreAuth) {
		t.Fatalf("after UNAUTH: %q, want the pre-auth lifetime's goodbye", last)
	}
	if took := time.Since(start); took < lifetime/2 {
		t.Errorf("ended %v after UNAUTH: the lifetime did not start anew", took)
	}
}

// The pre-auth lifetime ends a client that keeps talking (empty lines,
// answered forever by some protocols) but never logs in, whatever
// deadlines the protocol restarts; a login lifts it.
func TestPreAuthLifetime(t *testing.T) {
	const lifetime = time.Second
	g := &Gate{Limits: Config{PreAuthLifetime: lifetime}}
	var (
		mu      sync.Mutex
		refused []Reason
	)
	g.Refused = func(_ string, r Reason) { mu.Lock(); refused = append(refused, r); mu.Unlock() }
	s := startLineServer(t, g, Service{})
	talker, _ := s.admitted(t, "192.0.2.1")
	user, _ := s.admitted(t, "192.0.2.2")
	if got := user.send("AUTH"); got != "OK" {
		t.Fatalf("AUTH: %q", got)
	}
	start := time.Now()
	var last string
	for time.Since(start) < 20*time.Second {
		last = talker.send("")
		if last != "OK" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	t.Logf("disconnected after %v (lifetime %v)", took.Round(time.Millisecond), lifetime)
	if last != "BYE "+string(LimitPreAuth) {
		t.Fatalf("after %v: %q, want the protocol's goodbye for %s", took, last, LimitPreAuth)
	}
	if took < lifetime/2 || took > lifetime+5*time.Second {
		t.Errorf("disconnected after %v, configured %v", took, lifetime)
	}
	if got := user.send(""); got != "OK" {
		t.Errorf("logged-in client: %q", got)
	}
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(refused) == 1 && refused[0] == LimitPreAuth
	})
}

// A library that sets a deadline far away cannot extend the session or
// DATA limits; and a protocol that is not reading at all is closed a
// grace later.
func TestAbsoluteLimits(t *testing.T) {
	tests := []struct {
		name   string
		limits Config
		setup  []string
		want   Reason
		within time.Duration
	}{
		{"session", Config{MaxSession: time.Second}, []string{"AUTH"}, LimitSession, time.Second},
		{"data", Config{MaxData: time.Second}, []string{"AUTH", "DATA"}, LimitData, time.Second},
		{"pre-auth beats session", Config{MaxSession: time.Hour, PreAuthLifetime: time.Second}, nil, LimitPreAuth, time.Second},
		{"data ended", Config{MaxData: 500 * time.Millisecond, MaxSession: 2 * time.Second}, []string{"AUTH", "DATA", "END"}, LimitSession, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startLineServer(t, &Gate{Limits: tt.limits}, Service{})
			c, _ := s.admitted(t, "192.0.2.1")
			start := time.Now()
			for _, l := range tt.setup {
				if got := c.send(l); got != "OK" {
					t.Fatalf("%s: %q", l, got)
				}
			}
			got := c.line() // the client says nothing more
			took := time.Since(start)
			if got != "BYE "+string(tt.want) {
				t.Fatalf("got %q after %v, want the goodbye for %s", got, took, tt.want)
			}
			if took < tt.within/2 || took > tt.within+5*time.Second {
				t.Errorf("closed after %v, limit %v", took, tt.within)
			}
		})
	}
}

// A protocol that never reads (stuck elsewhere) is closed by the gate a
// grace after the limit.
func TestOverdueClose(t *testing.T) {
	g := &Gate{Limits: Config{MaxSession: 300 * time.Millisecond}, grace: 300 * time.Millisecond}
	tl := testnet.Listen(t)
	gl, err := g.Listen(tl, Service{Name: "stuck"})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := gl.Accept()
		if err == nil {
			accepted <- c.(*Conn)
		}
	}()
	cl := tl.Dial(t, netip.MustParseAddr("192.0.2.1"))
	gc := <-accepted
	start := time.Now()
	cl.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = cl.Read(make([]byte, 1))
	took := time.Since(start)
	if err == nil || took > 10*time.Second {
		t.Fatalf("read: %v after %v, want the connection closed", err, took)
	}
	if gc.Context().Err() == nil {
		t.Error("context not cancelled by the gate's close")
	}
	if got := gc.Expired(); got != LimitSession {
		t.Errorf("Expired() = %q", got)
	}
	gc.Close()
}

// Shutdown ends idle connections at once, waits for work in flight to go
// idle, refuses new work, and closes the rest when its context ends.
func TestShutdown(t *testing.T) {
	// A short grace for goodbyes: the work in flight outlasts it, and
	// its connection still gets one once idle.
	g := &Gate{grace: 100 * time.Millisecond}
	s := startLineServer(t, g, Service{})
	idle, _ := s.admitted(t, "192.0.2.1")
	busy, _ := s.admitted(t, "192.0.2.2")
	if got := busy.send("BUSY"); got != "OK" {
		t.Fatalf("BUSY: %q", got)
	}
	done := make(chan error, 1)
	go func() { done <- g.Shutdown(context.Background()) }()
	if got := idle.line(); got != "BYE "+string(Shutdown) {
		t.Errorf("idle client: %q", got)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with work in flight", err)
	case <-time.After(300 * time.Millisecond):
	}
	// The work goes on, no new one starts, and once idle it ends.
	if got := busy.send("more work"); got != "OK" {
		t.Errorf("busy client during shutdown: %q", got)
	}
	if got := busy.send("IDLE"); got != "OK" {
		t.Errorf("IDLE: %q", got)
	}
	if got := busy.line(); got != "BYE "+string(Shutdown) {
		t.Errorf("after going idle: %q", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if err := <-s.done; err == nil {
		t.Error("listener still accepting")
	}
	if err := g.Shutdown(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("second Shutdown: %v", err)
	}
	if _, err := g.Listen(testnet.Listen(t), Service{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Listen after Shutdown: %v", err)
	}
}

func TestShutdownDeadline(t *testing.T) {
	g := &Gate{}
	s := startLineServer(t, g, Service{})
	busy, _ := s.admitted(t, "192.0.2.1")
	busy.send("BUSY")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := g.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := busy.line(); !strings.HasPrefix(got, "error") {
		t.Errorf("busy client after the deadline: %q", got)
	}
}

// Busy refuses new work once shutting down.
func TestBusyDuringShutdown(t *testing.T) {
	g := &Gate{}
	s := startLineServer(t, g, Service{})
	c, _ := s.admitted(t, "192.0.2.1")
	c.send("BUSY")
	go g.Shutdown(context.Background())
	waitFor(t, g.Closing)
	c.send("IDLE")
	// The read after IDLE is cut; a pipelined BUSY would be refused.
	if got := c.line(); got != "BYE "+string(Shutdown) {
		t.Errorf("got %q", got)
	}
}

func TestConnOf(t *testing.T) {
	g := &Gate{}
	g.init()
	gc := newConn(g, nopConn{}, &Service{}, netip.Addr{}, netip.Prefix{})
	defer gc.Close()
	if ConnOf(gc) != gc {
		t.Error("ConnOf(conn)")
	}
	if ConnOf(wrapper{gc}) != gc {
		t.Error("ConnOf(wrapped)")
	}
	if ConnOf(nopConn{}) != nil {
		t.Error("ConnOf(other) != nil")
	}
}

type wrapper struct{ net.Conn }

func (w wrapper) NetConn() net.Conn { return w.Conn }

type nopConn struct{ net.Conn }

func (nopConn) SetReadDeadline(time.Time) error  { return nil }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }
func (nopConn) Close() error                     { return nil }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
