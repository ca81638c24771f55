package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/userdb"
)

// ErrServerClosed is returned by Serve after Close or Shutdown.
var ErrServerClosed = errors.New("imap: server closed")

// MailStore opens an account's mailbox; *store.Store is the implementation.
type MailStore interface {
	OpenMailbox(ctx context.Context, acct store.Account) (*store.Mailbox, error)
}

// Timeouts bound how long the server waits for a client. Zero fields take
// the defaults.
type Timeouts struct {
	// Login is how long a client that has not logged in may take to send
	// its next command (default 1 minute).
	Login time.Duration
	// Idle is the autologout timer of a logged-in client and the longest
	// IDLE (default 30 minutes, the minimum RFC 9051 allows).
	Idle time.Duration
	// Command is how long the rest of a started command, its literals
	// included, may take to arrive (default 5 minutes).
	Command time.Duration
	// Write bounds each write to the client (default 1 minute); a long
	// FETCH goes on as long as the client keeps reading.
	Write time.Duration
	// Handshake bounds a TLS handshake, implicit or after STARTTLS
	// (default 30 seconds).
	Handshake time.Duration
	// IdlePoll is how often IDLE looks at the folder for changes made by
	// other programs (Postfix, Dovecot), which do not notify this process
	// (default 30 seconds). Changes made through this process's Store are
	// pushed at once.
	IdlePoll time.Duration
}

// Defaults and hard limits.
const (
	DefaultAppendLimit   = 64 << 20
	DefaultMaxLineLength = 32 << 10
	// maxCommandText is what go-imap's decoder reads of one command outside
	// literals (its own limit is 50 KiB, past which it fails badly).
	maxCommandText = 48 << 10
	// maxSmallLiteral is go-imap's limit for literals other than APPEND's
	// message (it buffers them in memory).
	maxSmallLiteral = 4096
)

// Server is an IMAP server over go-imap's imapserver, the user directory
// and the mail store. Set the fields, then call Serve (port 143, with
// STARTTLS when TLSConfig is set) or ServeTLS (port 993). Every field but
// Directory and Store has a working zero value. The fields must not change
// after the first Serve.
type Server struct {
	// Directory authenticates users and tells their quota limits. Required.
	Directory userdb.Directory
	// Store holds the mail. Required; all servers and the delivery agent
	// of a process must share one *store.Store (it carries the change
	// notifications IDLE waits for).
	Store MailStore
	// Quotas keeps quota usage; with it APPEND and COPY are charged against
	// Directory.QuotaLimit and refused with NO [OVERQUOTA], and
	// GETQUOTAROOT/GETQUOTA report it. Nil: no quota.
	Quotas userdb.QuotaStore
	// TLSConfig enables STARTTLS and is used by ServeTLS. TLS 1.2 is the
	// minimum whatever it says.
	TLSConfig *tls.Config
	// AllowInsecureAuth allows LOGIN and AUTHENTICATE without TLS: for
	// tests and loopback listeners only.
	AllowInsecureAuth bool
	// Logins is the login service every LOGIN and AUTHENTICATE goes
	// through (one shared with SMTP and POP3); nil guards nothing, for
	// tests.
	Logins login.Guard
	// Logger receives structured logs; nil discards them. Passwords are
	// never logged.
	Logger *slog.Logger
	// MaxConnsPerIP limits simultaneous connections from one address
	// (default 20: mail clients open several; negative: unlimited).
	MaxConnsPerIP int
	// AppendLimit is the largest message APPEND accepts, in octets
	// (default DefaultAppendLimit); it is advertised as APPENDLIMIT.
	AppendLimit int64
	// MaxLineLength bounds one command line (default DefaultMaxLineLength,
	// at most 48 KiB, which is what go-imap parses).
	MaxLineLength int
	Timeouts      Timeouts

	mu        sync.Mutex
	started   bool
	closed    bool
	done      chan struct{}
	ctx       context.Context // parent of every connection; cancelled by Close
	cancel    context.CancelFunc
	lib       *imapserver.Server
	listeners map[net.Listener]struct{}
	conns     map[*frontConn]struct{}
	perIP     map[netip.Addr]int
	wg        sync.WaitGroup
	tlsConfig *tls.Config
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
	s.conns = make(map[*frontConn]struct{})
	s.perIP = make(map[netip.Addr]int)
	if s.TLSConfig != nil {
		s.tlsConfig = s.TLSConfig.Clone()
		if s.tlsConfig.MinVersion < tls.VersionTLS12 {
			s.tlsConfig.MinVersion = tls.VersionTLS12
		}
	}
	s.lib = imapserver.New(&imapserver.Options{
		NewSession: s.newSession,
		Caps:       libraryCaps(),
		Logger:     libLogger{s.logger()},
		// The front (front.go) does STARTTLS and owns the TLS decision,
		// because go-imap can only see the front, never the *tls.Conn:
		// the library is told auth is always allowed and the session
		// refuses it over plaintext.
		TLSConfig:    nil,
		InsecureAuth: true,
	})
}

// libraryCaps is what go-imap advertises for us; the front adds STARTTLS,
// LOGINDISABLED and QUOTA, which the library does not know how to offer.
func libraryCaps() goimap.CapSet {
	return goimap.CapSet{
		goimap.CapIMAP4rev1:      {},
		goimap.CapIMAP4rev2:      {},
		goimap.CapNamespace:      {},
		goimap.CapUIDPlus:        {},
		goimap.CapESearch:        {},
		goimap.CapSearchRes:      {},
		goimap.CapListExtended:   {},
		goimap.CapListStatus:     {},
		goimap.CapMove:           {},
		goimap.CapStatusSize:     {},
		goimap.CapChildren:       {},
		goimap.CapSpecialUse:     {},
		goimap.CapLiteralPlus:    {},
		goimap.CapUnauthenticate: {},
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) appendLimit() int64 {
	n := s.AppendLimit
	if n <= 0 {
		n = DefaultAppendLimit
	}
	return min(n, math.MaxUint32)
}

func (s *Server) maxLine() int {
	n := s.MaxLineLength
	if n <= 0 {
		n = DefaultMaxLineLength
	}
	return min(n, maxCommandText)
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (s *Server) loginTimeout() time.Duration   { return durationOr(s.Timeouts.Login, time.Minute) }
func (s *Server) idleTimeout() time.Duration    { return durationOr(s.Timeouts.Idle, 30*time.Minute) }
func (s *Server) commandTimeout() time.Duration { return durationOr(s.Timeouts.Command, 5*time.Minute) }
func (s *Server) writeTimeout() time.Duration   { return durationOr(s.Timeouts.Write, time.Minute) }
func (s *Server) handshakeTimeout() time.Duration {
	return durationOr(s.Timeouts.Handshake, 30*time.Second)
}
func (s *Server) idlePoll() time.Duration { return durationOr(s.Timeouts.IdlePoll, 30*time.Second) }

// ServeTLS serves implicit TLS (port 993) on l with TLSConfig. Serving a
// tls.Listener with Serve does the same.
func (s *Server) ServeTLS(l net.Listener) error {
	s.mu.Lock()
	s.init()
	cfg := s.tlsConfig
	s.mu.Unlock()
	if cfg == nil {
		return errors.New("imap: ServeTLS needs TLSConfig")
	}
	return s.Serve(tls.NewListener(l, cfg))
}

// Serve accepts connections on l until Close or Shutdown, then returns
// ErrServerClosed. Connections from a tls.Listener are implicit TLS.
func (s *Server) Serve(l net.Listener) error {
	if s.Directory == nil || s.Store == nil {
		return errors.New("imap: Server.Directory and Server.Store are required")
	}
	s.mu.Lock()
	s.init()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	lib := s.lib
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	err := lib.Serve(&listener{Listener: l, srv: s})
	select {
	case <-s.done:
		return ErrServerClosed
	default:
	}
	if err == nil {
		// go-imap returns nil when the listener was closed under it.
		return net.ErrClosed
	}
	return err
}

// listener hands go-imap a front for every accepted connection, after the
// per-address limit.
type listener struct {
	net.Listener
	srv *Server
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if f := l.srv.newFront(nc); f != nil {
			return f, nil
		}
	}
}

// newFront registers nc, or refuses it over the per-address limit.
func (s *Server) newFront(nc net.Conn) *frontConn {
	ip := addrIP(nc.RemoteAddr())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return nil
	}
	limit := s.MaxConnsPerIP
	if limit == 0 {
		limit = 20
	}
	if ip.IsValid() && limit > 0 && s.perIP[ip] >= limit {
		s.mu.Unlock()
		s.logger().Warn("imap connection limit", "remote", nc.RemoteAddr().String(), "limit", limit)
		go func() {
			// A TLS client is answered inside TLS; the handshake is
			// bounded like the write.
			nc.SetDeadline(time.Now().Add(s.handshakeTimeout()))
			nc.Write([]byte("* BYE [UNAVAILABLE] Too many connections from your address\r\n"))
			nc.Close()
		}()
		return nil
	}
	if ip.IsValid() {
		s.perIP[ip]++
	}
	f := newFrontConn(s, nc, ip)
	s.conns[f] = struct{}{}
	// Added under s.mu, before Shutdown can see closed and Wait; done by
	// the session's Close, which go-imap always calls.
	s.wg.Add(1)
	s.mu.Unlock()
	return f
}

func (s *Server) forget(f *frontConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[f]; !ok {
		return
	}
	delete(s.conns, f)
	if f.ip.IsValid() {
		if s.perIP[f.ip]--; s.perIP[f.ip] <= 0 {
			delete(s.perIP, f.ip)
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
// directory and store calls cancelled.
func (s *Server) Close() error {
	if !s.stopAccepting() {
		return ErrServerClosed
	}
	s.closeConns()
	s.wg.Wait()
	return nil
}

func (s *Server) closeConns() {
	s.mu.Lock()
	s.cancel()
	conns := make([]*frontConn, 0, len(s.conns))
	for f := range s.conns {
		conns = append(conns, f)
	}
	s.mu.Unlock()
	for _, f := range conns {
		f.Close()
	}
}

// Shutdown stops accepting, says BYE to every client that is between
// commands or in IDLE (the others get it when their command completes) and
// waits for the connections to end. When ctx ends first, the remaining
// connections are closed as by Close and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.stopAccepting() {
		return ErrServerClosed
	}
	s.mu.Lock()
	conns := make([]*frontConn, 0, len(s.conns))
	for f := range s.conns {
		conns = append(conns, f)
	}
	s.mu.Unlock()
	for _, f := range conns {
		f.shutdown()
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

// libLogger sends go-imap's printf-style messages to slog. A client that
// hangs up is routine; everything else it reports is a server problem.
type libLogger struct{ log *slog.Logger }

func (l libLogger) Printf(format string, args ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, args...))
	if strings.HasPrefix(msg, "failed to read command") || strings.HasPrefix(msg, "failed to write greeting") {
		l.log.Debug("imap library", "msg", msg)
		return
	}
	l.log.Warn("imap library", "msg", msg)
}
