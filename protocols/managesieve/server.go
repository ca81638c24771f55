package managesieve

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/protocols/login"
)

// ErrServerClosed is returned by Serve after Shutdown or Close; it is the
// gate's ErrClosed, the same for every protocol.
var ErrServerClosed = gate.ErrClosed

// Timeouts bound how long the server waits for a client.
type Timeouts struct {
	// Idle is how long to wait for the next command, literals included
	// (default 10 minutes). The gate's pre-auth lifetime and session
	// limit come on top.
	Idle time.Duration
	// Write bounds each write to the client (default 1 minute).
	Write time.Duration
	// Handshake bounds the TLS handshake after STARTTLS (default 30s).
	Handshake time.Duration
}

// Server is a ManageSieve server. Set the fields, then call Serve; the
// zero value of every field but Backend is a working default. The fields
// must not change after the first Serve.
type Server struct {
	// Backend checks logins and opens scripts. Required.
	Backend Backend
	// Implementation is the IMPLEMENTATION capability (default "vmaild").
	Implementation string
	// Extensions is the SIEVE capability: the interpreter's extensions.
	Extensions []string
	// MaxRedirects is the MAXREDIRECTS capability; 0 leaves it out.
	MaxRedirects int
	// MaxScriptSize bounds a literal (a script), in octets (default 1
	// MiB). A bigger one is read, thrown away and answered NO
	// (QUOTA/MAXSIZE), up to 16 MiB; beyond that the client is cut off.
	MaxScriptSize int64
	// TLSConfig enables STARTTLS. TLS 1.2 is the minimum whatever it
	// says.
	TLSConfig *tls.Config
	// AllowInsecureAuth allows AUTHENTICATE without TLS: for tests and
	// loopback listeners only.
	AllowInsecureAuth bool
	Timeouts          Timeouts
	// Logger receives structured logs; nil discards them. Passwords and
	// scripts are never logged.
	Logger *slog.Logger
	// Logins is the login service every AUTHENTICATE goes through (shared
	// with the other listeners); nil guards nothing, for tests.
	Logins login.Guard
	// Gate admits connections and bounds how long they last; share one
	// between every listener of the process. Nil: a gate of this Server's
	// own with the default limits.
	Gate *gate.Gate
	// MaxBadCommands closes a connection after this many unknown,
	// malformed or refused commands and failed logins (default 10).
	MaxBadCommands int

	mu        sync.Mutex
	started   bool
	gate      *gate.Gate
	tlsConfig *tls.Config
}

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
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func orDefault[T ~int | ~int64](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

func (s *Server) idleTimeout() time.Duration  { return orDefault(s.Timeouts.Idle, 10*time.Minute) }
func (s *Server) writeTimeout() time.Duration { return orDefault(s.Timeouts.Write, time.Minute) }
func (s *Server) handshakeTimeout() time.Duration {
	return orDefault(s.Timeouts.Handshake, 30*time.Second)
}
func (s *Server) maxBadCommands() int  { return orDefault(s.MaxBadCommands, 10) }
func (s *Server) maxScriptSize() int64 { return orDefault(s.MaxScriptSize, 1<<20) }

// ServeTLS is Serve: ManageSieve has no implicit-TLS port. It is here so
// the daemon starts every listener the same way, and refuses.
func (s *Server) ServeTLS(l net.Listener) error {
	l.Close()
	return errors.New("managesieve: no implicit TLS port (RFC 5804 uses STARTTLS)")
}

// Serve accepts connections on l until Close or Shutdown, then returns
// ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	g := s.connGate()
	if s.Backend == nil {
		return errors.New("managesieve: Server.Backend is nil")
	}
	gl, err := g.Listen(l, gate.Service{
		Name:    "managesieve",
		Refusal: func(text string) string { return "BYE (TRYLATER) " + quote(text) + "\r\n" },
	})
	if err != nil {
		return err
	}
	var backoff time.Duration
	for {
		nc, err := gl.Accept()
		if err != nil {
			if g.Closing() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || strings.Contains(err.Error(), "too many open files") {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("managesieve accept", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		go newConn(s, nc).serve()
	}
}

func (s *Server) connGate() *gate.Gate {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	return s.gate
}

// Close stops the gate the server passes through (every listener of a
// shared Gate): listeners and connections are closed at once.
func (s *Server) Close() error { return s.connGate().Close() }

// Shutdown stops the gate the server passes through: sessions waiting for
// a command get BYE (TRYLATER), a command in progress finishes first. When
// ctx ends first the remaining connections are closed as by Close.
func (s *Server) Shutdown(ctx context.Context) error { return s.connGate().Shutdown(ctx) }
