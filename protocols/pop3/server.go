package pop3

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/vmaild/vmaild/protocols/login"
)

// ErrServerClosed is returned by Serve after Close or Shutdown.
var ErrServerClosed = errors.New("pop3: server closed")

// Timeouts bound how long the server waits for a client.
type Timeouts struct {
	// Idle is how long to wait for the next command (default 10 minutes,
	// the minimum RFC 1939 allows for the autologout timer).
	Idle time.Duration
	// Write bounds each write to the client (default 1 minute); a RETR
	// keeps going as long as the client keeps reading.
	Write time.Duration
	// Handshake bounds a TLS handshake, implicit or after STLS (default
	// 30 seconds).
	Handshake time.Duration
}

// Server is a POP3 server. Set the fields, then call Serve (port 110, with
// STLS when TLSConfig is set) or ServeTLS (port 995); the zero value of every
// field but Backend is a working default. The fields must not change after
// the first Serve.
type Server struct {
	// Backend checks logins and opens maildrops. Required.
	Backend Backend
	// Hostname is named in the greeting and the sign-off.
	Hostname string
	// TLSConfig enables STLS and is used by ServeTLS. TLS 1.2 is the
	// minimum whatever it says.
	TLSConfig *tls.Config
	// AllowInsecureAuth allows USER/PASS and AUTH without TLS: for tests and
	// loopback listeners only.
	AllowInsecureAuth bool
	Timeouts          Timeouts
	// Logger receives structured logs; nil discards them. Passwords are
	// never logged.
	Logger *slog.Logger
	// Logins is the login service every USER/PASS and AUTH goes through
	// (one shared with SMTP and IMAP); nil guards nothing, for tests.
	Logins login.Guard
	// MaxConnsPerIP limits simultaneous connections from one address
	// (default 10; negative: unlimited).
	MaxConnsPerIP int
	// MaxBadCommands closes a connection after this many unknown, malformed
	// or refused commands and failed logins (default 10).
	MaxBadCommands int
	// Locks is the maildrop lock table. Listeners that serve the same
	// accounts (110 and 995) must share one; nil gives this Server its own.
	Locks *Locks

	mu        sync.Mutex
	started   bool
	closed    bool
	done      chan struct{}
	ctx       context.Context // parent of every session; cancelled by Close
	cancel    context.CancelFunc
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	perIP     map[netip.Addr]int
	wg        sync.WaitGroup
	tlsConfig *tls.Config
	locks     *Locks
}

// init prepares the server's state once; s.mu is held.
func (s *Server) init() {
	if s.started {
		return
	}
	s.started = true
	s.done = make(chan struct{})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.listeners = make(map[net.Listener]struct{})
	s.conns = make(map[*conn]struct{})
	s.perIP = make(map[netip.Addr]int)
	if s.TLSConfig != nil {
		s.tlsConfig = s.TLSConfig.Clone()
		if s.tlsConfig.MinVersion < tls.VersionTLS12 {
			s.tlsConfig.MinVersion = tls.VersionTLS12
		}
	}
	s.locks = s.Locks
	if s.locks == nil {
		s.locks = new(Locks)
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) hostname() string {
	if s.Hostname == "" {
		return "localhost"
	}
	return s.Hostname
}

func (s *Server) idleTimeout() time.Duration {
	if s.Timeouts.Idle > 0 {
		return s.Timeouts.Idle
	}
	return 10 * time.Minute
}

func (s *Server) writeTimeout() time.Duration {
	if s.Timeouts.Write > 0 {
		return s.Timeouts.Write
	}
	return time.Minute
}

func (s *Server) handshakeTimeout() time.Duration {
	if s.Timeouts.Handshake > 0 {
		return s.Timeouts.Handshake
	}
	return 30 * time.Second
}

func (s *Server) maxBadCommands() int {
	if s.MaxBadCommands > 0 {
		return s.MaxBadCommands
	}
	return 10
}

// ServeTLS serves implicit TLS (port 995) on l with TLSConfig. Serving a
// tls.Listener with Serve does the same.
func (s *Server) ServeTLS(l net.Listener) error {
	s.mu.Lock()
	s.init()
	cfg := s.tlsConfig
	s.mu.Unlock()
	if cfg == nil {
		return errors.New("pop3: ServeTLS needs TLSConfig")
	}
	return s.Serve(tls.NewListener(l, cfg))
}

// Serve accepts connections on l until Close or Shutdown, then returns
// ErrServerClosed. Connections from a tls.Listener are implicit TLS.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	s.init()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	if s.Backend == nil {
		return errors.New("pop3: Server.Backend is nil")
	}

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			select {
			case <-s.done:
				return ErrServerClosed
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporaryAccept(err) {
				// Out of file descriptors and the like: wait instead
				// of spinning, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("pop3 accept", "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
				case <-s.done:
					return ErrServerClosed
				}
				continue
			}
			return err
		}
		backoff = 0
		c := s.newConn(nc)
		if c == nil {
			continue
		}
		go func() {
			defer s.wg.Done()
			c.serve()
		}()
	}
}

func isTemporaryAccept(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "too many open files") || strings.Contains(msg, "resource temporarily unavailable")
}

// newConn registers nc, or refuses it over the per-address limit.
func (s *Server) newConn(nc net.Conn) *conn {
	ip := addrIP(nc.RemoteAddr())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return nil
	}
	limit := s.MaxConnsPerIP
	if limit == 0 {
		limit = 10
	}
	if ip.IsValid() && limit > 0 && s.perIP[ip] >= limit {
		s.mu.Unlock()
		s.logger().Warn("pop3 connection limit", "remote", nc.RemoteAddr().String(), "limit", limit)
		if _, isTLS := nc.(*tls.Conn); !isTLS {
			// A TLS client could not read a plaintext answer.
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			nc.Write([]byte("-ERR [SYS/TEMP] too many connections from your address\r\n"))
		}
		nc.Close()
		return nil
	}
	if ip.IsValid() {
		s.perIP[ip]++
	}
	c := newConn(s, nc, ip)
	s.conns[c] = struct{}{}
	// Added under s.mu, before Shutdown can see closed and Wait.
	s.wg.Add(1)
	s.mu.Unlock()
	return c
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if c.ip.IsValid() {
		if s.perIP[c.ip]--; s.perIP[c.ip] <= 0 {
			delete(s.perIP, c.ip)
		}
	}
}

func addrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// stopAccepting closes the listeners; it reports false if the server was
// already closed.
func (s *Server) stopAccepting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if s.closed {
		return false
	}
	s.closed = true
	close(s.done)
	for l := range s.listeners {
		l.Close()
	}
	return true
}

// Close stops the server at once: listeners and connections are closed and
// backend calls cancelled. Interrupted sessions delete nothing.
func (s *Server) Close() error {
	if !s.stopAccepting() {
		return ErrServerClosed
	}
	s.closeConns()
	return nil
}

func (s *Server) closeConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancel()
	for c := range s.conns {
		c.nc().Close()
	}
}

// Shutdown stops accepting and waits for the sessions to end by themselves.
// When ctx ends first, the remaining connections are closed as by Close —
// their deletions are not applied — and ctx's error is returned after their
// goroutines have finished.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.stopAccepting() {
		return ErrServerClosed
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.closeConns()
		<-done
		return ctx.Err()
	}
}

// Locks is a table of locked maildrops, keyed by account. The zero value is
// ready; share one between Servers that serve the same accounts.
type Locks struct {
	mu   sync.Mutex
	held map[string]struct{}
}

func (l *Locks) tryLock(account string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == nil {
		l.held = make(map[string]struct{})
	}
	if _, ok := l.held[account]; ok {
		return false
	}
	l.held[account] = struct{}{}
	return true
}

func (l *Locks) unlock(account string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, account)
}
