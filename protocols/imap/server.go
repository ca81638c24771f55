package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"math"
	"net"
	"sync"
	"time"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/protocols/imap/wire"
	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/userdb"
)

// ErrServerClosed is returned by Serve after Shutdown or Close, and by a
// second Shutdown; it is the gate's ErrClosed, the same for every protocol.
var ErrServerClosed = gate.ErrClosed

// MailStore opens an account's mailbox; *store.Store is the implementation.
type MailStore interface {
	OpenMailbox(ctx context.Context, acct store.Account) (*store.Mailbox, error)
}

// Timeouts bound how long the server waits for a client. Zero fields take
// the defaults. The gate's absolute limits (pre-auth lifetime, session)
// come on top.
type Timeouts struct {
	// Login is how long a client that has not logged in may take to send
	// its next command (default 1 minute); the gate's pre-auth lifetime
	// bounds all of them together.
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

// Defaults.
const (
	DefaultAppendLimit   = 64 << 20
	DefaultMaxLineLength = 64 << 10
)

// Server is an IMAP server over the user directory
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
	// Gate admits connections and bounds how long they last; share one
	// between every listener of the process. Nil: a gate of this Server's
	// own with the default limits.
	Gate *gate.Gate
	// AppendLimit is the largest message APPEND accepts, in octets
	// (default DefaultAppendLimit); it is advertised as APPENDLIMIT.
	AppendLimit int64
	// MaxLineLength bounds one command line, the text between two literals
	// (default DefaultMaxLineLength).
	MaxLineLength int
	Timeouts      Timeouts
	// SortCacheBytes bounds the header fields SORT and THREAD keep for
	// every session of the server (default DefaultSortCacheBytes, about
	// 120,000 messages' worth).
	SortCacheBytes int64

	// MaxCompressed caps the sessions that may use COMPRESS=DEFLATE at
	// once (default DefaultMaxCompressed), MaxCompressedPerNetwork those
	// of one client network (default DefaultMaxCompressedPerNetwork);
	// negative: none may.
	MaxCompressed           int
	MaxCompressedPerNetwork int

	sorts      *sortCache // SORT and THREAD's header fields, all sessions'
	compressed compressCap
	mu         sync.Mutex
	started    bool
	gate       *gate.Gate
	tlsConfig  *tls.Config
}

// init prepares the server's state once; s.mu is held.
func (s *Server) init() {
	if s.started {
		return
	}
	s.started = true
	s.sorts = newSortCache(s.SortCacheBytes)
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
	return n
}

// limits bounds what the command reader accepts.
func (s *Server) limits() wire.Limits {
	return wire.Limits{Line: s.maxLine(), Append: s.appendLimit()}
}

// preLoginLimits: before login no command takes a message, so no literal,
// not even one skipped after an error, may exceed the one of an argument.
// Otherwise a client that never logs in could have the server read and
// discard an APPEND's worth of octets per command.
func (s *Server) preLoginLimits() wire.Limits {
	l := s.limits()
	l.Append = 64 << 10
	return l
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

// ServeTLS serves implicit TLS (port 993) on l with TLSConfig.
func (s *Server) ServeTLS(l net.Listener) error { return s.serve(l, true) }

// Serve accepts connections on l until Close or Shutdown, then returns
// ErrServerClosed.
func (s *Server) Serve(l net.Listener) error { return s.serve(l, false) }

func (s *Server) serve(l net.Listener, implicitTLS bool) error {
	if s.Directory == nil || s.Store == nil {
		return errors.New("imap: Server.Directory and Server.Store are required")
	}
	s.mu.Lock()
	s.init()
	cfg := s.tlsConfig
	s.mu.Unlock()
	if implicitTLS && cfg == nil {
		return errors.New("imap: ServeTLS needs TLSConfig")
	}
	svc := gate.Service{Name: "imap"}
	if implicitTLS {
		svc.Name = "imaps"
	} else {
		svc.Refusal = func(text string) string { return "* BYE [UNAVAILABLE] " + text + "\r\n" }
	}
	gl, err := s.gate.Listen(l, svc)
	if err != nil {
		return err
	}
	var ln net.Listener = gl
	if implicitTLS {
		ln = tls.NewListener(gl, cfg)
	}
	return s.gate.AcceptLoop(ln, s.logger(), "imap", func(nc net.Conn) { newConn(s, nc).serve() })
}

// connGate is the gate the server passes through.
func (s *Server) connGate() *gate.Gate {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	return s.gate
}

// Close stops the gate the server passes through (every listener of a
// shared Gate) at once: listeners and connections are closed and directory
// and store calls cancelled.
func (s *Server) Close() error {
	return s.connGate().Close()
}

// Shutdown stops the gate the server passes through (every listener of a
// shared Gate): it says BYE to every client that is between commands or in
// IDLE (the others get it when their command completes) and waits for the
// connections to end. When ctx ends first, the remaining connections are
// closed as by Close and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.connGate().Shutdown(ctx)
}
