// Package queuetest provides the remote side of outbound delivery for
// tests: a DNS server answering MX and A records from a table, and SMTP
// sinks that record what they receive and answer as a test scripts them.
// Everything listens on 127.0.0.1 and stops when the test ends.
package queuetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
)

// DNS is an authoritative-looking DNS server for made-up domains. A name
// with no records at all is NXDOMAIN; a known name without records of the
// asked type is an empty NOERROR answer.
type DNS struct {
	// Addr is the server's host:port (UDP).
	Addr string

	mu       sync.Mutex
	rrs      map[string][]dns.RR
	servfail map[string]bool
	secure   map[string]bool // AD bit on answers (dnssec.go)
	queries  int
}

// NewDNS starts a DNS server on a loopback UDP port.
func NewDNS(t testing.TB) *DNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("queuetest: dns listen: %v", err)
	}
	d := &DNS{Addr: pc.LocalAddr().String(), rrs: make(map[string][]dns.RR), servfail: make(map[string]bool)}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve), NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return d
}

func (d *DNS) add(rr dns.RR) {
	d.mu.Lock()
	defer d.mu.Unlock()
	name := strings.ToLower(rr.Header().Name)
	d.rrs[name] = append(d.rrs[name], rr)
}

// MX adds an MX record; host "." makes a null MX (RFC 7505).
func (d *DNS) MX(domain string, pref uint16, host string) {
	d.add(&dns.MX{Hdr: dns.RR_Header{Name: dns.Fqdn(domain), Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 60}, Preference: pref, Mx: dns.Fqdn(host)})
}

// A adds an address record (A or AAAA by the address's family).
func (d *DNS) A(host, ip string) {
	addr := net.ParseIP(ip)
	hdr := dns.RR_Header{Name: dns.Fqdn(host), Class: dns.ClassINET, Ttl: 60}
	if v4 := addr.To4(); v4 != nil {
		hdr.Rrtype = dns.TypeA
		d.add(&dns.A{Hdr: hdr, A: v4})
		return
	}
	hdr.Rrtype = dns.TypeAAAA
	d.add(&dns.AAAA{Hdr: hdr, AAAA: addr})
}

// TXT adds a text record, which makes a name exist without mail records.
// A text longer than a DNS string (255 bytes, e.g. a DKIM RSA key) is
// split into several strings, as a zone file has it.
func (d *DNS) TXT(name, text string) {
	var parts []string
	for len(text) > 255 {
		parts, text = append(parts, text[:255]), text[255:]
	}
	parts = append(parts, text)
	d.add(&dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: parts})
}

// SRV adds a service record (RFC 2782), e.g. for "_imaps._tcp.example.com";
// target "." is the "no service" record.
func (d *DNS) SRV(name string, priority, weight, port uint16, target string) {
	d.add(&dns.SRV{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 60},
		Priority: priority, Weight: weight, Port: port, Target: dns.Fqdn(target)})
}

// CNAME adds an alias record. It is answered to CNAME queries only: the
// server does not follow it for other types, as a recursive resolver
// would.
func (d *DNS) CNAME(name, target string) {
	d.add(&dns.CNAME{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: dns.Fqdn(target)})
}

// ServFail makes every query for name fail with SERVFAIL (on is true) or
// stops doing so.
func (d *DNS) ServFail(name string, on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.servfail[strings.ToLower(dns.Fqdn(name))] = on
}

// Queries is how many queries the server answered.
func (d *DNS) Queries() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queries
}

func (d *DNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	d.mu.Lock()
	d.queries++
	if len(req.Question) == 1 {
		q := req.Question[0]
		name := strings.ToLower(q.Name)
		rrs, known := d.rrs[name]
		switch {
		case d.servfail[name]:
			m.Rcode = dns.RcodeServerFailure
		case !known:
			m.Rcode = dns.RcodeNameError
		default:
			for _, rr := range rrs {
				if rr.Header().Rrtype == q.Qtype {
					m.Answer = append(m.Answer, dns.Copy(rr))
				}
			}
		}
		m.AuthenticatedData = d.secure[name]
	} else {
		m.Rcode = dns.RcodeFormatError
	}
	d.mu.Unlock()
	w.WriteMsg(m)
}

// Message is one message a sink accepted.
type Message struct {
	From  string
	Rcpts []string
	Data  []byte
	TLS   bool
	Helo  string
	// RequireTLS: MAIL FROM carried REQUIRETLS (RFC 8689).
	RequireTLS bool
}

// SinkOptions script a sink. Nil functions accept everything.
type SinkOptions struct {
	// Rcpt answers RCPT TO; return an *smtp.SMTPError to refuse.
	Rcpt func(rcpt string) error
	// Data answers the final dot; return an *smtp.SMTPError to refuse.
	Data func(m Message) error
	// TLS enables STARTTLS with this configuration.
	TLS *tls.Config
	// ImplicitTLS serves TLS from the first byte (needs TLS).
	ImplicitTLS bool
	// Auth enables AUTH PLAIN, accepting only this user and password.
	Auth *[2]string
	// Hold delays each DATA reply so concurrent sessions overlap.
	Hold time.Duration
	// RequireTLS advertises REQUIRETLS (RFC 8689) over TLS.
	RequireTLS bool
}

// Sink is an SMTP server that records messages.
type Sink struct {
	Addr string // 127.0.0.1:port
	Port int

	opts SinkOptions
	mu   sync.Mutex
	msgs []Message
	sess int
	got  chan struct{}
}

// NewSink starts an SMTP sink on a loopback port.
func NewSink(t testing.TB, opts SinkOptions) *Sink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("queuetest: sink listen: %v", err)
	}
	s := &Sink{Addr: l.Addr().String(), Port: l.Addr().(*net.TCPAddr).Port, opts: opts, got: make(chan struct{}, 1)}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.sess++
		s.mu.Unlock()
		return &session{s: s, c: c}, nil
	}))
	srv.Domain = "sink.test"
	srv.TLSConfig = opts.TLS
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.EnableSMTPUTF8 = true
	srv.AllowInsecureAuth = true
	srv.EnableREQUIRETLS = opts.RequireTLS
	if opts.ImplicitTLS {
		l = tls.NewListener(l, opts.TLS)
	}
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return s
}

// Messages returns what the sink accepted so far.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Sessions is how many sessions were opened.
func (s *Sink) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sess
}

// Wait blocks until the sink has accepted n messages, failing the test
// after a generous safety limit.
func (s *Sink) Wait(t testing.TB, n int) []Message {
	t.Helper()
	limit := time.After(30 * time.Second)
	for {
		if m := s.Messages(); len(m) >= n {
			return m
		}
		select {
		case <-s.got:
		case <-limit:
			t.Fatalf("queuetest: sink %s got %d messages, want %d", s.Addr, len(s.Messages()), n)
		}
	}
}

type session struct {
	s          *Sink
	c          *smtp.Conn
	from       string
	rcpts      []string
	requireTLS bool
}

func (ss *session) Reset()        { ss.from, ss.rcpts, ss.requireTLS = "", nil, false }
func (ss *session) Logout() error { return nil }
func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	ss.from = from
	ss.requireTLS = opts != nil && opts.RequireTLS
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if f := ss.s.opts.Rcpt; f != nil {
		if err := f(to); err != nil {
			return err
		}
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := ss.c.TLSConnectionState()
	m := Message{From: ss.from, Rcpts: append([]string(nil), ss.rcpts...), Data: data, TLS: isTLS, Helo: ss.c.Hostname(), RequireTLS: ss.requireTLS}
	if ss.s.opts.Hold > 0 {
		time.Sleep(ss.s.opts.Hold)
	}
	if f := ss.s.opts.Data; f != nil {
		if err := f(m); err != nil {
			return err
		}
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, m)
	ss.s.mu.Unlock()
	select {
	case ss.s.got <- struct{}{}:
	default:
	}
	return nil
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.Auth == nil {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	want := ss.s.opts.Auth
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if want == nil || user != want[0] || pass != want[1] {
			return smtp.ErrAuthFailed
		}
		return nil
	}), nil
}

// SelfSigned returns a server TLS configuration with a fresh self-signed
// certificate for host (and 127.0.0.1), and a pool that trusts it.
func SelfSigned(t testing.TB, host string) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: host},
		DNSNames:              []string{host},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}, pool
}

// Router maps made-up addresses (from DNS answers, on the configured
// port) to real loopback listeners, so several "MX hosts" can be sinks on
// 127.0.0.1. Use its Dial as queue.Config.Dial. Unmapped addresses are
// refused, as a host that is down would.
type Router struct {
	mu     sync.Mutex
	routes map[string]string
	dials  []string
	open   map[string]int
	peak   map[string]int
}

// Route sends connections for from (host:port) to to (host:port).
func (r *Router) Route(from, to string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.routes == nil {
		r.routes = make(map[string]string)
	}
	r.routes[from] = to
}

// Dials lists the addresses dialled, in order.
func (r *Router) Dials() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.dials...)
}

// Peak is the largest number of connections to addr (as dialled) that
// were open at the same time, counted on the dialling side: from a
// successful Dial to the connection's Close. That is the window a client's
// concurrency cap governs. The server's own count of a session ends later,
// when its goroutine has finished tearing down after the 221 reply, which
// a loaded machine delays past the client's next connection.
func (r *Router) Peak(addr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peak[addr]
}

// Dial connects to the route for addr.
func (r *Router) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	r.dials = append(r.dials, addr)
	to, ok := r.routes[addr]
	r.mu.Unlock()
	if !ok {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errRefused}
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, to)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.open == nil {
		r.open, r.peak = make(map[string]int), make(map[string]int)
	}
	r.open[addr]++
	r.peak[addr] = max(r.peak[addr], r.open[addr])
	r.mu.Unlock()
	return &routedConn{Conn: c, r: r, addr: addr}, nil
}

// routedConn counts itself open until its first Close.
type routedConn struct {
	net.Conn
	r     *Router
	addr  string
	close sync.Once
}

func (c *routedConn) Close() error {
	err := c.Conn.Close()
	c.close.Do(func() {
		c.r.mu.Lock()
		c.r.open[c.addr]--
		c.r.mu.Unlock()
	})
	return err
}

type refused struct{}

func (refused) Error() string { return "connection refused (no route in test)" }

var errRefused error = refused{}
