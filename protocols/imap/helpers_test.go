package imap

import (
	"bufio"
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
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/userdb"
)

// memDirectory is an in-memory userdb.Directory.
type memDirectory struct {
	mu     sync.Mutex
	users  map[string]string // address → password
	limits map[string]userdb.Limit
	down   bool
}

func newMemDirectory() *memDirectory {
	return &memDirectory{users: map[string]string{}, limits: map[string]userdb.Limit{}}
}

func (d *memDirectory) add(address, password string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[address] = password
}

func (d *memDirectory) setLimit(address string, l userdb.Limit) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.limits[address] = l
}

func (d *memDirectory) setDown(down bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = down
}

func (d *memDirectory) Authenticate(ctx context.Context, login, password string) (*userdb.Account, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return nil, userdb.Unavailable("lookup", errors.New("connection refused"))
	}
	addr := strings.ToLower(login)
	want, ok := d.users[addr]
	if !ok {
		return nil, fmt.Errorf("%q: %w", login, userdb.ErrNotFound)
	}
	if want != password {
		return nil, fmt.Errorf("%q: %w", login, userdb.ErrBadCredentials)
	}
	return &userdb.Account{Address: addr, Active: true}, nil
}

func (d *memDirectory) Account(ctx context.Context, address string) (*userdb.Account, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.users[address]; !ok {
		return nil, userdb.ErrNotFound
	}
	return &userdb.Account{Address: address, Active: true}, nil
}

func (d *memDirectory) IsLocalDomain(ctx context.Context, domain string) (bool, error) {
	return true, nil
}

func (d *memDirectory) Resolve(ctx context.Context, address string) ([]userdb.Destination, error) {
	return []userdb.Destination{{Address: address, Local: true}}, nil
}

// MaySendAs is never asked by IMAP; only the account itself is granted.
func (d *memDirectory) MaySendAs(ctx context.Context, account, address string) (bool, error) {
	return account == address, nil
}

func (d *memDirectory) QuotaLimit(ctx context.Context, address string) (userdb.Limit, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return userdb.Limit{}, userdb.Unavailable("quota", errors.New("connection refused"))
	}
	return d.limits[address], nil
}

// memQuota is an in-memory userdb.QuotaStore.
type memQuota struct {
	mu    sync.Mutex
	usage map[string]userdb.Usage
}

func newMemQuota() *memQuota { return &memQuota{usage: map[string]userdb.Usage{}} }

func (q *memQuota) Usage(ctx context.Context, address string) (userdb.Usage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.usage[address], nil
}

func (q *memQuota) AddUsage(ctx context.Context, address string, bytes, messages int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	u := q.usage[address]
	u.Bytes += bytes
	u.Messages += messages
	q.usage[address] = u
	return nil
}

func (q *memQuota) ReserveUsage(ctx context.Context, address string, bytes, messages int64, limit userdb.Limit) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	u := q.usage[address]
	if limit.Bytes > 0 && u.Bytes+bytes > limit.Bytes || limit.Messages > 0 && u.Messages+messages > limit.Messages {
		return false, nil
	}
	u.Bytes += bytes
	u.Messages += messages
	q.usage[address] = u
	return true, nil
}

func (q *memQuota) SetUsage(ctx context.Context, address string, u userdb.Usage) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.usage[address] = u
	return nil
}

// env is a running server with its directory, quota store and mail store.
type env struct {
	srv    *Server
	dir    *memDirectory
	quotas *memQuota
	store  *store.Store
	addr   string // plain (STARTTLS) listener
	tlsAdr string // implicit TLS listener, when TLS is on
	cert   *x509.CertPool
}

const (
	testUser = "alice@example.org"
	testPass = "secret-Pa55"
)

type envOption func(*Server)

// newEnv starts a server on loopback with one user. The plain listener
// allows plaintext auth unless an option turns it off.
func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	e := &env{dir: newMemDirectory(), quotas: newMemQuota(), store: &store.Store{Root: t.TempDir(), Hostname: "test"}}
	e.dir.add(testUser, testPass)
	e.srv = &Server{
		Directory:         e.dir,
		Store:             e.store,
		Quotas:            e.quotas,
		AllowInsecureAuth: true,
		MaxConnsPerIP:     -1,
	}
	for _, o := range opts {
		o(e.srv)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	done := make(chan error, 2)
	go func() { done <- e.srv.Serve(l) }()
	n := 1
	if e.srv.TLSConfig != nil {
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		e.tlsAdr = tl.Addr().String()
		n++
		go func() { done <- e.srv.ServeTLS(tl) }()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil && !errors.Is(err, ErrServerClosed) {
			t.Errorf("Shutdown: %v", err)
		}
		for i := 0; i < n; i++ {
			if err := <-done; !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
		}
	})
	return e
}

// withTLS gives the server a self-signed certificate; clients trust it
// through env.cert.
func withTLS(insecureAuth bool) envOption {
	return func(s *Server) {
		s.TLSConfig = testTLSConfig()
		s.AllowInsecureAuth = insecureAuth
	}
}

var (
	tlsOnce sync.Once
	tlsCert tls.Certificate
	tlsPool *x509.CertPool
)

func testTLSConfig() *tls.Config {
	tlsOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "imap.example.org"},
			DNSNames:     []string{"imap.example.org", "localhost"},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		tlsCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
		c, _ := x509.ParseCertificate(der)
		tlsPool = x509.NewCertPool()
		tlsPool.AddCert(c)
	})
	return &tls.Config{Certificates: []tls.Certificate{tlsCert}}
}

func clientTLS() *tls.Config {
	testTLSConfig()
	return &tls.Config{RootCAs: tlsPool, ServerName: "imap.example.org"}
}

// dial connects an imapclient over plaintext.
func (e *env) dial(t testing.TB, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(e.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// login dials and logs in as the test user.
func (e *env) login(t testing.TB, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c := e.dial(t, opts)
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

// deliver puts a message into a folder through the MDA's path.
func (e *env) deliver(t testing.TB, folder, msg string) {
	t.Helper()
	if _, err := e.store.Deliver(context.Background(), store.Recipient{Address: testUser, Folder: folder}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
}

// raw is a line-oriented client for exact protocol checks.
type raw struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func (e *env) raw(t testing.TB) *raw {
	t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &raw{t: t, c: c, br: bufio.NewReader(c)}
	if g := r.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	return r
}

func (r *raw) send(s string) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write([]byte(s)); err != nil {
		r.t.Fatalf("write %q: %v", s, err)
	}
}

// line reads one line without its CRLF.
func (r *raw) line() string {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := r.br.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read: %v (have %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// until reads lines up to the one starting with prefix and returns all.
func (r *raw) until(prefix string) []string {
	r.t.Helper()
	var out []string
	for {
		l := r.line()
		out = append(out, l)
		if strings.HasPrefix(l, prefix) {
			return out
		}
	}
}

// closed reports whether the server has closed the connection (after
// reading whatever it still sent).
func (r *raw) closed() bool {
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, err := r.br.ReadString('\n'); err != nil {
			return true
		}
	}
}

func (r *raw) login() {
	r.t.Helper()
	r.send("L1 LOGIN " + testUser + " " + testPass + "\r\n")
	if l := r.until("L1 "); !strings.HasPrefix(l[len(l)-1], "L1 OK") {
		r.t.Fatalf("login: %q", l)
	}
}

func limitBytes(n int64) userdb.Limit { return userdb.Limit{Bytes: n} }

// certPEM is the test certificate, for clients that read a CA file.
func certPEM() []byte {
	testTLSConfig()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsCert.Certificate[0]})
}

func splitHostPort(t testing.TB, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
