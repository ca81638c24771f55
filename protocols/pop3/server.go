package pop3

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/protocols/login"
)

// ErrServerClosed is returned by Serve after Shutdown or Close, and by a
// second Shutdown; it is the gate's ErrClosed, the same for every protocol.
var ErrServerClosed = gate.ErrClosed

// Timeouts bound how long the server waits for a client.
type Timeouts struct {
	// Idle is how long to wait for the next command (default 10 minutes,
	// the minimum RFC 1939 allows for the autologout timer). The gate's
	// pre-auth lifetime and session limit come on top.
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
	// Gate admits connections and bounds how long they last; share one
	// between every listener of the process. Nil: a gate of this Server's
	// own with the default limits.
	Gate *gate.Gate
	// MaxBadCommands closes a connection after this many unknown, malformed
	// or refused commands and failed logins (default 10).
	MaxBadCommands int
	// Locks is the maildrop lock table. Listeners that serve the same
	// accounts (110 and 995) must share one; nil gives this Server its own.
	Locks *Locks

	mu        sync.Mutex
	started   bool
	gate      *gate.Gate
	tlsConfig *tls.Config
	locks     *Locks
}

// init prepares the server's state once; s.mu is held.
func (s *Server) init() {
	if s.started {
		return
	}
	s.started = true
	s.gate = s.Gate
	if s.gate == nil {
		s.gate = &gate.Gate{Logger: s.logger()}
	}
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

// ServeTLS serves implicit TLS (port 995) on l with TLSConfig.
func (s *Server) ServeTLS(l net.Listener) error { return s.serve(l, true) }

// Serve accepts connections on l until Close or Shutdown, then returns
// ErrServerClosed.
func (s *Server) Serve(l net.Listener) error { return s.serve(l, false) }

func (s *Server) serve(l net.Listener, implicitTLS bool) error {
	s.mu.Lock()
	s.init()
	cfg := s.tlsConfig
	s.mu.Unlock()
	if s.Backend == nil {
		return errors.New("pop3: Server.Backend is nil")
	}
	if implicitTLS && cfg == nil {
		return errors.New("pop3: ServeTLS needs TLSConfig")
	}
	svc := gate.Service{Name: "pop3"}
	if implicitTLS {
		svc.Name = "pop3s"
	} else {
		// RFC 3206's SYS/TEMP: the client should try again later.
		svc.Refusal = func(text string) string { return "-ERR [SYS/TEMP] " + text + "\r\n" }
	}
	gl, err := s.gate.Listen(l, svc)
	if err != nil {
		return err
	}
	var ln net.Listener = gl
	if implicitTLS {
		ln = tls.NewListener(gl, cfg)
	}

	return s.gate.AcceptLoop(ln, s.logger(), "pop3", func(nc net.Conn) { newConn(s, nc).serve() })
}

// connGate is the gate the server passes through.
func (s *Server) connGate() *gate.Gate {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	return s.gate
}

// Close stops the gate the server passes through (every listener of a
// shared Gate) at once: listeners and connections are closed and backend
// calls cancelled. Interrupted sessions delete nothing.
func (s *Server) Close() error {
	return s.connGate().Close()
}

// Shutdown stops the gate the server passes through (every listener of a
// shared Gate): sessions waiting for a command are ended with -ERR
// [SYS/TEMP] (without UPDATE: their deletions are not applied), a command
// in progress finishes first, QUIT included. When ctx ends first, the
// remaining connections are closed as by Close and ctx's error is returned
// after their sessions have let go of them.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.connGate().Shutdown(ctx)
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
