package managesieve

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/sieve"
	"github.com/vmaild/vmaild/userdb"
)

// memBackend keeps scripts in memory and validates them with the real
// interpreter; it stands in for the mail-home store, which cmd/vmaild's
// tests drive.
type memBackend struct {
	mu       sync.Mutex
	password map[string]string
	scripts  map[string]map[string]string
	active   map[string]string
	maxCount int
	maxSize  int64
	down     bool
	closes   int
}

func newMemBackend() *memBackend {
	return &memBackend{
		password: map[string]string{"me@example.com": "secret"},
		scripts:  map[string]map[string]string{"me@example.com": {}},
		active:   map[string]string{},
		maxCount: 3, maxSize: 200,
	}
}

func (b *memBackend) Login(_ context.Context, _ ConnInfo, user, pass string) (Scripts, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return nil, userdb.Unavailable("test directory", errors.New("down"))
	}
	if p, ok := b.password[user]; !ok || p != pass {
		return nil, errors.New("bad password")
	}
	return &memScripts{b: b, user: user}, nil
}

type memScripts struct {
	b    *memBackend
	user string
}

func (s *memScripts) Account() string { return s.user }

func (s *memScripts) List(context.Context) ([]Script, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	var out []Script
	for n := range s.b.scripts[s.user] {
		out = append(out, Script{Name: n, Active: s.b.active[s.user] == n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s *memScripts) Get(_ context.Context, name string) ([]byte, error) {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	src, ok := s.b.scripts[s.user][name]
	if !ok {
		return nil, ErrNonExistent
	}
	return []byte(src), nil
}

func (s *memScripts) space(name string, size int64) error {
	if size > s.b.maxSize {
		return &QuotaError{Limit: QuotaMaxSize, Msg: "script too large"}
	}
	if _, ok := s.b.scripts[s.user][name]; !ok && len(s.b.scripts[s.user]) >= s.b.maxCount {
		return &QuotaError{Limit: QuotaMaxScripts, Msg: "too many scripts"}
	}
	return nil
}

func (s *memScripts) Put(ctx context.Context, name string, src []byte) error {
	if err := s.Check(ctx, src); err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if err := s.space(name, int64(len(src))); err != nil {
		return err
	}
	s.b.scripts[s.user][name] = string(src)
	return nil
}

func (s *memScripts) Check(_ context.Context, src []byte) error {
	if _, err := sieve.Compile(src, sieve.Options{}); err != nil {
		return &ScriptError{Msg: err.Error()}
	}
	return nil
}

func (s *memScripts) HaveSpace(_ context.Context, name string, size int64) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.space(name, size)
}

func (s *memScripts) SetActive(_ context.Context, name string) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if _, ok := s.b.scripts[s.user][name]; !ok && name != "" {
		return ErrNonExistent
	}
	s.b.active[s.user] = name
	return nil
}

func (s *memScripts) Delete(_ context.Context, name string) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if _, ok := s.b.scripts[s.user][name]; !ok {
		return ErrNonExistent
	}
	if s.b.active[s.user] == name {
		return ErrActive
	}
	delete(s.b.scripts[s.user], name)
	return nil
}

func (s *memScripts) Rename(_ context.Context, from, to string) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	src, ok := s.b.scripts[s.user][from]
	if !ok {
		return ErrNonExistent
	}
	if _, ok := s.b.scripts[s.user][to]; ok {
		return ErrAlreadyExists
	}
	delete(s.b.scripts[s.user], from)
	s.b.scripts[s.user][to] = src
	if s.b.active[s.user] == from {
		s.b.active[s.user] = to
	}
	return nil
}

func (s *memScripts) Close() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.closes++
	return nil
}

// startServer serves srv on a loopback port until the test ends.
func startServer(t testing.TB, srv *Server) string {
	t.Helper()
	if srv.Backend == nil {
		srv.Backend = newMemBackend()
	}
	if srv.Extensions == nil {
		srv.Extensions = sieve.Extensions()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// client is a line-level test client.
type client struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &client{t: t, nc: nc, r: bufio.NewReader(nc)}
	c.response() // the greeting's capabilities
	return c
}

func (c *client) send(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// response reads lines up to and including the one starting with OK, NO
// or BYE, reading literals whole, and returns them joined by "\n".
func (c *client) response() string {
	c.t.Helper()
	var lines []string
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read after %q: %v", lines, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if strings.HasSuffix(line, "}") {
			if i := strings.LastIndexByte(line, '{'); i >= 0 {
				if n, err := strconv.Atoi(line[i+1 : len(line)-1]); err == nil {
					buf := make([]byte, n)
					if _, err := io.ReadFull(c.r, buf); err != nil {
						c.t.Fatal(err)
					}
					line += string(buf)
					rest, _ := c.r.ReadString('\n')
					line += strings.TrimRight(rest, "\r\n")
				}
			}
		}
		lines = append(lines, line)
		for _, p := range []string{"OK", "NO", "BYE"} {
			if line == p || strings.HasPrefix(line, p+" ") {
				return strings.Join(lines, "\n")
			}
		}
	}
}

// cmd sends a command and returns its response.
func (c *client) cmd(s string) string {
	c.t.Helper()
	c.send(s + "\r\n")
	return c.response()
}

func (c *client) login(user, pass string) {
	c.t.Helper()
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	if r := c.cmd(`AUTHENTICATE "PLAIN" "` + ir + `"`); r != "OK \"Logged in\"" {
		c.t.Fatalf("login: %s", r)
	}
}

func literal(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }

// testTLS is a self-signed certificate for 127.0.0.1.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}
