package smtp

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/testnet"
	"github.com/vmaild/vmaild/protocols/gate"
)

func withGate(g *gate.Gate) serverOpt { return func(s *Server) { s.Gate = g } }

func withLimits(c gate.Config) serverOpt { return withGate(&gate.Gate{Limits: c}) }

// drip writes s one byte per interval until the connection fails or stop
// is closed; errors are the server closing, which the test reads.
func drip(c net.Conn, s string, interval time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; ; i++ {
		if _, err := c.Write([]byte{s[i%len(s)]}); err != nil {
			return
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// cutWithin reads until the server's 421 and checks when it came.
func cutWithin(t *testing.T, c *rawClient, start time.Time, limit time.Duration) {
	t.Helper()
	for {
		r, ok := c.readReply()
		if !ok {
			t.Fatalf("closed without 421 after %v", time.Since(start))
		}
		if r.code == 421 {
			break
		}
	}
	took := time.Since(start)
	t.Logf("disconnected after %v (limit %v)", took.Round(time.Millisecond), limit)
	// Generous: the bound must hold on a loaded machine.
	if took < limit/2 || took > limit+5*time.Second {
		t.Errorf("disconnected after %v, limit %v", took, limit)
	}
	if !c.closed() {
		t.Error("connection open after 421")
	}
}

// A client dripping a command line one byte per second is disconnected at
// the command deadline, although every byte restarts nothing.
func TestDripCommandLine(t *testing.T) {
	const deadline = 2 * time.Second
	e := startServer(t, RoleMTA, false, withLimits(gate.Config{CommandDeadline: deadline}))
	c := dialRaw(t, e.addr)
	c.must("EHLO drip.test", "250 ")
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go drip(c.conn, "NOOP xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", time.Second, stop)
	cutWithin(t, c, start, deadline)
}

// Whole commands sent slowly, each within the command deadline, still end
// at the session limit.
func TestSessionLimit(t *testing.T) {
	const session = 3 * time.Second
	e := startServer(t, RoleMTA, false, withLimits(gate.Config{MaxSession: session}))
	start := time.Now()
	c := dialRaw(t, e.addr)
	c.must("EHLO slow.test", "250 ")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			if _, err := io.WriteString(c.conn, "NOOP\r\n"); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	cutWithin(t, c, start, session)
}

// A message dripped one byte at a time (each read well within the read
// timeout) is cut at max_data and not delivered.
func TestDripData(t *testing.T) {
	const maxData = 2 * time.Second
	e := startServer(t, RoleMTA, false, withLimits(gate.Config{MaxData: maxData}))
	c := dialRaw(t, e.addr)
	c.must("EHLO drip.test", "250 ")
	c.must("MAIL FROM:<someone@remote.test>", "250 ")
	c.must("RCPT TO:<alice@example.org>", "250 ")
	c.must("DATA", "354")
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go drip(c.conn, "Subject: drip\r\n\r\nbody\r\n", 200*time.Millisecond, stop)
	cutWithin(t, c, start, maxData)
	if got := e.agent.all(); len(got) != 0 {
		t.Errorf("%d deliveries of a cut message", len(got))
	}
}

// A message that arrives in time is delivered, however long the session
// lasted before it, and a message over the size limit is answered 552
// after go-smtp has read the rest (still under the message's limits).
func TestDataWithinLimits(t *testing.T) {
	e := startServer(t, RoleMTA, false, withLimits(gate.Config{MaxData: 5 * time.Second}),
		func(s *Server) { s.MaxMessageBytes = 1 << 10 })
	c := dialRaw(t, e.addr)
	c.must("EHLO ok.test", "250 ")
	c.must("MAIL FROM:<someone@remote.test>", "250 ")
	c.must("RCPT TO:<alice@example.org>", "250 ")
	c.must("DATA", "354")
	c.send("Subject: big\r\n\r\n" + strings.Repeat("y", 2<<10) + "\r\n.\r\n")
	c.expect("552 5.3.4")
	c.must("MAIL FROM:<someone@remote.test>", "250 ")
	c.must("RCPT TO:<alice@example.org>", "250 ")
	c.must("DATA", "354")
	c.send("Subject: ok\r\n\r\nbody\r\n.\r\n")
	c.expect("250 2.0.0")
	c.must("NOOP", "250 ")
}

// Submission clients must log in within the pre-auth lifetime, whatever
// they send meanwhile; logged-in ones stay.
func TestSubmissionPreAuthLifetime(t *testing.T) {
	const lifetime = time.Second
	e := startServer(t, RoleSubmission, false, withInsecureAuth, withLimits(gate.Config{PreAuthLifetime: lifetime}))
	user := dialRaw(t, e.addr)
	user.must("EHLO user.test", "250 ")
	user.must("AUTH PLAIN "+plainIR("alice@example.org", "secret-alice"), "235 ")
	start := time.Now()
	c := dialRaw(t, e.addr)
	c.must("EHLO idle.test", "250 ")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			if _, err := io.WriteString(c.conn, "NOOP\r\n"); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	cutWithin(t, c, start, lifetime)
	user.must("NOOP", "250 ")
}

// Connections from one IPv6 /64 are capped together, whatever their
// addresses; other /64s are not affected. The refusal is 421 4.7.0.
func TestIPv6NetworkCap(t *testing.T) {
	tl := testnet.Listen(t)
	startServerOn(t, tl, RoleMTA, false, withLimits(gate.Config{MaxPerNetwork: 2}))
	dial := func(from string) *rawClient {
		c := tl.Dial(t, netip.MustParseAddr(from))
		return &rawClient{t: t, conn: c, r: bufio.NewReader(c)}
	}
	dial("2001:db8:1:2::1").expect("220 ")
	dial("2001:db8:1:2::2").expect("220 ")
	for _, from := range []string{"2001:db8:1:2::3", "2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2:1234:5678::9"} {
		c := dial(from)
		r := c.expect("421 4.7.0")
		if !strings.Contains(r.last(), "from your network") {
			t.Errorf("refusal %q", r)
		}
		if !c.closed() {
			t.Errorf("refused connection from %s open", from)
		}
	}
	dial("2001:db8:1:3::1").expect("220 ")
	dial("2001:db8:ffff:2::1").expect("220 ")
}

// One gate shared by the MTA and submission counts a client on both; the
// MTA's clients, who never log in, do not count as waiting to log in.
func TestSharedGate(t *testing.T) {
	g := &gate.Gate{Limits: gate.Config{MaxPerNetwork: 3, MaxUnauthenticated: 1}}
	mta := startServer(t, RoleMTA, false, withGate(g))
	sub := startServer(t, RoleSubmission, false, withGate(g), withInsecureAuth)
	implicit := startServer(t, RoleSubmission, true, withGate(g))

	waiting := dialRaw(t, sub.addr)
	r := dialRawNoGreeting(t, sub.addr).expect("421 4.7.0")
	if !strings.Contains(r.last(), "waiting to log in") {
		t.Errorf("refusal %q", r)
	}
	dialRaw(t, mta.addr)
	waiting.must("EHLO user.test", "250 ")
	waiting.must("AUTH PLAIN "+plainIR("alice@example.org", "secret-alice"), "235 ")
	dialRaw(t, sub.addr) // the login freed a place waiting to log in
	// Three connections from 127.0.0.1 over two listeners: the network is
	// full for every listener; on implicit TLS the refusal is a close.
	dialRawNoGreeting(t, mta.addr).expect("421 4.7.0")
	c, err := net.Dial("tcp", implicit.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("implicit TLS refusal: read %d bytes, want a close", n)
	}
}
