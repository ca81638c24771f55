package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/userdb"
)

// memBackend is an in-memory Backend: accounts with passwords and messages.
// It stands in for the store adapter, which is built later.
type memBackend struct {
	mu       sync.Mutex
	users    map[string]string // login → password
	boxes    map[string]*memBox
	down     bool          // directory unavailable
	block    chan struct{} // if set, Login waits for it or ctx
	loginCtx chan context.Context
	opens    int // maildrops handed out
	closes   int
	deletes  int
}

type memBox struct {
	msgs []memMsg
}

type memMsg struct {
	uid  string
	body []byte
}

func newMemBackend() *memBackend {
	return &memBackend{users: map[string]string{}, boxes: map[string]*memBox{}}
}

// add creates an account with messages; uids are "u1", "u2", ...
func (b *memBackend) add(login, password string, bodies ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.users[login] = password
	box := &memBox{}
	for i, body := range bodies {
		box.msgs = append(box.msgs, memMsg{uid: fmt.Sprintf("u%d", i+1), body: []byte(body)})
	}
	b.boxes[strings.ToLower(login)] = box
}

func (b *memBackend) uids(login string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.boxes[login].msgs {
		out = append(out, m.uid)
	}
	return out
}

func (b *memBackend) Login(ctx context.Context, conn ConnInfo, username, password string) (Maildrop, error) {
	if b.loginCtx != nil {
		b.loginCtx <- ctx
	}
	if b.block != nil {
		select {
		case <-b.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return nil, userdb.Unavailable("lookup", errors.New("connection refused"))
	}
	if conn.RemoteAddr == nil || !conn.IP.IsValid() {
		return nil, errors.New("no connection info")
	}
	want, ok := b.users[username]
	if !ok {
		return nil, fmt.Errorf("login %q: %w", username, userdb.ErrNotFound)
	}
	if want != password {
		return nil, fmt.Errorf("login %q: %w", username, userdb.ErrBadCredentials)
	}
	b.opens++
	return &memDrop{b: b, account: strings.ToLower(username)}, nil
}

type memDrop struct {
	b       *memBackend
	account string
	snap    []memMsg
	closed  bool
}

func (d *memDrop) Account() string { return d.account }

func (d *memDrop) Messages(ctx context.Context) ([]Message, error) {
	d.b.mu.Lock()
	defer d.b.mu.Unlock()
	d.snap = append([]memMsg(nil), d.b.boxes[d.account].msgs...)
	out := make([]Message, len(d.snap))
	for i, m := range d.snap {
		n, err := Size(bytes.NewReader(m.body))
		if err != nil {
			return nil, err
		}
		out[i] = Message{UID: m.uid, Size: n}
	}
	return out, nil
}

func (d *memDrop) Open(ctx context.Context, i int) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(d.snap[i].body)), nil
}

func (d *memDrop) Delete(ctx context.Context, uids []string) error {
	d.b.mu.Lock()
	defer d.b.mu.Unlock()
	d.b.deletes++
	gone := map[string]bool{}
	for _, u := range uids {
		gone[u] = true
	}
	box := d.b.boxes[d.account]
	var keep []memMsg
	for _, m := range box.msgs {
		if !gone[m.uid] {
			keep = append(keep, m)
		}
	}
	box.msgs = keep
	return nil
}

func (d *memDrop) Close() error {
	d.b.mu.Lock()
	defer d.b.mu.Unlock()
	if d.closed {
		panic("maildrop closed twice")
	}
	d.closed = true
	d.b.closes++
	return nil
}

func (b *memBackend) closeCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closes
}

// testServer starts s on a loopback port and shuts it down at the end of
// the test, checking that every maildrop was closed.
func testServer(t testing.TB, s *Server, implicitTLS bool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Hostname == "" {
		s.Hostname = "pop.example.org"
	}
	done := make(chan error, 1)
	go func() {
		if implicitTLS {
			done <- s.ServeTLS(l)
		} else {
			done <- s.Serve(l)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// client is a test POP3 client on net/textproto.
type client struct {
	t    testing.TB
	conn net.Conn
	tp   *textproto.Conn
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, conn: nc, tp: textproto.NewConn(nc)}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	c.expect("+OK pop.example.org POP3 server ready")
	return c
}

func dialTLS(t testing.TB, addr string, cfg *tls.Config) *client {
	t.Helper()
	nc, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, conn: nc, tp: textproto.NewConn(nc)}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	c.expect("+OK pop.example.org POP3 server ready")
	return c
}

func (c *client) line() string {
	c.t.Helper()
	l, err := c.tp.ReadLine()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return l
}

// cmd sends a command and returns the status line.
func (c *client) cmd(format string, args ...any) string {
	c.t.Helper()
	if err := c.tp.PrintfLine(format, args...); err != nil {
		c.t.Fatalf("send: %v", err)
	}
	return c.line()
}

func (c *client) expect(want string) {
	c.t.Helper()
	if got := c.line(); got != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
}

// must sends a command and checks the status line's prefix.
func (c *client) must(cmd, wantPrefix string) string {
	c.t.Helper()
	got := c.cmd("%s", cmd)
	if !strings.HasPrefix(got, wantPrefix) {
		c.t.Fatalf("%s: got %q, want prefix %q", cmd, got, wantPrefix)
	}
	return got
}

// raw reads the body of a multi-line response exactly as sent, up to and
// without the terminating ".\r\n".
func (c *client) raw() []byte {
	c.t.Helper()
	var out []byte
	for {
		l, err := c.tp.R.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			c.t.Fatalf("read multi-line: %v", err)
		}
		if string(l) == ".\r\n" {
			return out
		}
		out = append(out, l...)
		for err == bufio.ErrBufferFull {
			l, err = c.tp.R.ReadSlice('\n')
			out = append(out, l...)
		}
	}
}

func (c *client) lines() []string {
	c.t.Helper()
	ls, err := c.tp.ReadDotLines()
	if err != nil {
		c.t.Fatal(err)
	}
	return ls
}

func (c *client) login(user, pass string) {
	c.t.Helper()
	c.must("USER "+user, "+OK")
	c.must("PASS "+pass, "+OK maildrop has")
}

// expectClosed checks the server hung up.
func (c *client) expectClosed() {
	c.t.Helper()
	if l, err := c.tp.ReadLine(); err == nil {
		c.t.Fatalf("connection still open, got %q", l)
	}
}

// testCert makes a self-signed certificate for localhost and 127.0.0.1.
func testCert(t testing.TB) (server *tls.Config, client *tls.Config, certPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool, ServerName: "localhost"}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return server, client, certPEM
}

func writeFile(t testing.TB, data []byte) string {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// reference is an independent statement of RETR's normalisation for
// bodies without bare CR: CRLF line endings, a final CRLF.
func reference(body string) string {
	s := strings.ReplaceAll(body, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\n", "\r\n")
	if s != "" && !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return s
}

func stuffed(s string) string {
	lines := strings.SplitAfter(s, "\r\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") {
			lines[i] = "." + l
		}
	}
	return strings.Join(lines, "")
}
