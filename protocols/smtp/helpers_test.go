package smtp

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/userdb"
)

// The directory and agent below are fakes, standing in for userdb.Users
// over SQLite and the delivery agent until the lead wires the end-to-end
// path: they implement the contracts' documented outcomes (including
// ErrUnavailable), which is what this package maps to replies.

type fakeAccount struct {
	password string
	acct     userdb.Account
}

type fakeDirectory struct {
	mu       sync.Mutex
	domains  map[string]bool
	accounts map[string]fakeAccount
	aliases  map[string][]string // source → account addresses
	senders  map[string][]string // sender address → accounts that may use it
	down     atomic.Bool         // every lookup fails with ErrUnavailable
	authDown atomic.Bool         // only Authenticate fails with ErrUnavailable
	// timeout is the directory's declared bound (userdb.Bounded); 0 is
	// none. Lookups record their context's deadline in deadlines.
	timeout   time.Duration
	deadlines []time.Time
}

func (d *fakeDirectory) Timeout() time.Duration { return d.timeout }

// record notes the deadline a lookup was given.
func (d *fakeDirectory) record(ctx context.Context) {
	dl, _ := ctx.Deadline()
	d.mu.Lock()
	d.deadlines = append(d.deadlines, dl)
	d.mu.Unlock()
}

func newFakeDirectory() *fakeDirectory {
	d := &fakeDirectory{
		domains:  map[string]bool{"example.org": true, "example.net": true},
		accounts: map[string]fakeAccount{},
		aliases:  map[string][]string{},
		senders:  map[string][]string{},
	}
	for _, a := range []string{"alice@example.org", "bob@example.org", "carol@example.net", "full@example.org", "tiny@example.org", "tempfail@example.org"} {
		d.accounts[a] = fakeAccount{password: "secret-" + strings.Split(a, "@")[0], acct: userdb.Account{Address: a, Active: true}}
	}
	d.aliases["sales@example.org"] = []string{"alice@example.org", "bob@example.org"}
	d.aliases["info@example.net"] = []string{"carol@example.net"}
	d.senders["press@example.org"] = []string{"alice@example.org"}
	return d
}

func (d *fakeDirectory) Authenticate(ctx context.Context, login, password string) (*userdb.Account, error) {
	if d.down.Load() || d.authDown.Load() {
		return nil, userdb.Unavailable("authenticate", errors.New("connection refused"))
	}
	addr, err := userdb.Canonical(login)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", userdb.ErrBadCredentials, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.accounts[addr]
	if !ok || a.password != password {
		return nil, fmt.Errorf("authenticate %s: %w", addr, userdb.ErrBadCredentials)
	}
	acct := a.acct
	return &acct, nil
}

func (d *fakeDirectory) Account(ctx context.Context, address string) (*userdb.Account, error) {
	if d.down.Load() {
		return nil, userdb.Unavailable("account", errors.New("connection refused"))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.accounts[address]
	if !ok {
		return nil, userdb.ErrNotFound
	}
	acct := a.acct
	return &acct, nil
}

func (d *fakeDirectory) IsLocalDomain(ctx context.Context, domain string) (bool, error) {
	d.record(ctx)
	if d.down.Load() {
		return false, userdb.Unavailable("domain", errors.New("connection refused"))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.domains[domain], nil
}

func (d *fakeDirectory) Resolve(ctx context.Context, address string) ([]userdb.Destination, error) {
	d.record(ctx)
	if d.down.Load() {
		return nil, userdb.Unavailable("resolve", errors.New("connection refused"))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.accounts[address]; ok {
		return []userdb.Destination{{Address: address, Local: true}}, nil
	}
	if dests, ok := d.aliases[address]; ok {
		var out []userdb.Destination
		for _, a := range dests {
			out = append(out, userdb.Destination{Address: a, Local: true})
		}
		return out, nil
	}
	return nil, fmt.Errorf("resolve %s: %w", address, userdb.ErrNotFound)
}

// MaySendAs grants an account its own address and the explicit grants in
// senders; the real rules are userdb's, tested over real backends there
// and through this server in TestSubmissionSenderRights.
func (d *fakeDirectory) MaySendAs(ctx context.Context, account, address string) (bool, error) {
	if d.down.Load() {
		return false, userdb.Unavailable("may send as", errors.New("connection refused"))
	}
	addr, err := userdb.Canonical(address)
	if err != nil {
		return false, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return addr == account || slices.Contains(d.senders[addr], account), nil
}

func (d *fakeDirectory) QuotaLimit(ctx context.Context, address string) (userdb.Limit, error) {
	return userdb.Limit{}, nil
}

// delivered is one message as the agent saw it.
type delivered struct {
	env   delivery.Envelope
	rcpts []string // env.Recipients' addresses
	data  string
}

// fakeAgent checks recipients against the fake directory and records
// deliveries; statuses can be forced per recipient.
type fakeAgent struct {
	dir *fakeDirectory

	mu         sync.Mutex
	checked    []string
	deliveries []delivered
	deliverAs  map[string]delivery.Outcome // recipient → forced Deliver outcome
	inspect    func(delivery.Message)      // when set, called with each message
}

func newFakeAgent(dir *fakeDirectory) *fakeAgent {
	return &fakeAgent{dir: dir, deliverAs: map[string]delivery.Outcome{}}
}

func (a *fakeAgent) Resolve(ctx context.Context, rcpt string) (delivery.Recipient, delivery.Outcome) {
	a.mu.Lock()
	a.checked = append(a.checked, rcpt)
	a.mu.Unlock()
	rc := delivery.Recipient{Address: rcpt}
	if rcpt == "full@example.org" {
		return rc, delivery.Temp(delivery.MailboxFull)
	}
	dests, err := a.dir.Resolve(ctx, rcpt)
	switch {
	case userdb.Temporary(err):
		return rc, delivery.Temp(delivery.DirectoryDown)
	case errors.Is(err, userdb.ErrNotFound):
		return rc, delivery.Perm(delivery.NoSuchUser)
	case err != nil:
		return rc, delivery.Temp(delivery.StoreFailed)
	case len(dests) == 0:
		return rc, delivery.Perm(delivery.NoSuchUser)
	}
	return rc, delivery.Outcome{Kind: delivery.Accepted}
}

func (a *fakeAgent) Deliver(ctx context.Context, env delivery.Envelope, msg delivery.Message) []delivery.Outcome {
	if a.inspect != nil {
		a.inspect(msg)
	}
	b, err := io.ReadAll(io.NewSectionReader(msg, 0, msg.Size()))
	out := make([]delivery.Outcome, len(env.Recipients))
	rcpts := make([]string, len(env.Recipients))
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, rc := range env.Recipients {
		r := rc.Address
		rcpts[i] = r
		switch st, forced := a.deliverAs[r]; {
		case err != nil:
			out[i] = delivery.Temp(delivery.StoreFailed)
		case forced:
			out[i] = st
		case strings.HasSuffix(r, "@example.org") || strings.HasSuffix(r, "@example.net"):
			out[i] = delivery.Outcome{Kind: delivery.Delivered}
		default:
			out[i] = delivery.Outcome{Kind: delivery.Queued}
		}
	}
	a.deliveries = append(a.deliveries, delivered{env: env, rcpts: rcpts, data: string(b)})
	return out
}

func (a *fakeAgent) all() []delivered {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]delivered(nil), a.deliveries...)
}

func (a *fakeAgent) checkedRecipients() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.checked...)
}

// testLogger sends the server's log to the test log, so a failing test shows
// what the server did.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// env is one running server with its fakes.
type env struct {
	srv   *Server
	dir   *fakeDirectory
	agent *fakeAgent
	addr  string
	tls   *tls.Config // client side, trusting the server's certificate
}

type serverOpt func(*Server)

// startServer runs a server of role on a loopback listener; implicit
// selects ServeTLS. TLS (STARTTLS) is configured unless a option removes
// it.
func startServer(t testing.TB, role Role, implicit bool, opts ...serverOpt) *env {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startServerOn(t, l, role, implicit, opts...)
}

// startServerOn is startServer on a listener of the test's.
func startServerOn(t testing.TB, l net.Listener, role Role, implicit bool, opts ...serverOpt) *env {
	t.Helper()
	dir := newFakeDirectory()
	agent := newFakeAgent(dir)
	serverTLS, clientTLS := testTLS(t)
	s := &Server{
		Role:      role,
		Hostname:  "mx.example.org",
		Directory: dir,
		Agent:     agent,
		TLSConfig: serverTLS,
		Logger:    testLogger(t),
		SpoolDir:  t.TempDir(),
	}
	for _, o := range opts {
		o(s)
	}
	done := make(chan error, 1)
	go func() {
		if implicit {
			done <- s.ServeTLS(l)
		} else {
			done <- s.Serve(l)
		}
	}()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return &env{srv: s, dir: dir, agent: agent, addr: l.Addr().String(), tls: clientTLS}
}

func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mx.example.org"},
		DNSNames:     []string{"mx.example.org"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
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
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool, ServerName: "mx.example.org"}
	return server, client
}

func withMyNetworks(p ...string) serverOpt {
	return func(s *Server) {
		for _, x := range p {
			s.MyNetworks = append(s.MyNetworks, netip.MustParsePrefix(x))
		}
	}
}

func withInsecureAuth(s *Server) { s.AllowInsecureAuth = true }

// rawClient speaks SMTP line by line, for hostile input and exact replies.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawClient{t: t, conn: c, r: bufio.NewReader(c)}
	rc.expect("220 ")
	return rc
}

// reply is one (possibly multi-line) server reply.
type reply struct {
	code  int
	lines []string // text after "NNN-" / "NNN "
}

func (r reply) String() string {
	return fmt.Sprintf("%d %s", r.code, strings.Join(r.lines, " | "))
}

// last is the final line's text (with the enhanced code, if any).
func (r reply) last() string { return r.lines[len(r.lines)-1] }

// readReply reads one reply; ok is false when the connection ended first.
func (c *rawClient) readReply() (reply, bool) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var r reply
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return r, false
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 {
			c.t.Fatalf("short reply line %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			c.t.Fatalf("bad reply line %q", line)
		}
		r.code = code
		r.lines = append(r.lines, line[4:])
		if line[3] == ' ' {
			return r, true
		}
	}
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// cmd sends one line and returns the reply.
func (c *rawClient) cmd(line string) reply {
	c.t.Helper()
	c.send(line + "\r\n")
	r, ok := c.readReply()
	if !ok {
		c.t.Fatalf("%q: connection closed", line)
	}
	return r
}

// expect reads a reply and checks that "code text" starts with want.
func (c *rawClient) expect(want string) reply {
	c.t.Helper()
	r, ok := c.readReply()
	if !ok {
		c.t.Fatalf("want %q, connection closed", want)
	}
	if got := fmt.Sprintf("%d %s", r.code, r.last()); !strings.HasPrefix(got, strings.TrimSpace(want)) {
		c.t.Fatalf("want %q, got %q", want, r.String())
	}
	return r
}

// must sends line and checks the reply starts with want.
func (c *rawClient) must(line, want string) reply {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.expect(want)
}

// closed reports whether the server has closed the connection.
func (c *rawClient) closed() bool {
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err := c.r.ReadByte()
	return err != nil
}

// startTLS upgrades the raw connection.
func (c *rawClient) startTLS(cfg *tls.Config) {
	c.t.Helper()
	c.must("STARTTLS", "220 2.0.0")
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

// message is a small well-formed message.
func testMessage(from, to, subject, body string) string {
	return "From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: " + subject +
		"\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <" + subject + "@test>\r\n\r\n" + body + "\r\n"
}

func requireSwaks(t *testing.T) string {
	t.Helper()
	const path = "/usr/bin/swaks"
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("swaks is required in CI: %v", err)
		}
		t.Skip("swaks not installed")
	}
	return path
}

// plainIR is an AUTH PLAIN initial response.
func plainIR(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

// dialRawNoGreeting connects without reading the greeting.
func dialRawNoGreeting(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, r: bufio.NewReader(c)}
}

// tlsClient finishes a STARTTLS whose 220 the caller has read.
func tlsClient(t testing.TB, c *rawClient, e *env) *rawClient {
	t.Helper()
	tc := tls.Client(c.conn, e.tls)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	return &rawClient{t: t, conn: tc, r: bufio.NewReader(tc)}
}
