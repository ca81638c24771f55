package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/gate"
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
	// Gate admits connections and bounds how long they last; share one
	// between every listener of the process. Nil: a gate of this Server's
	// own with the default limits.
	Gate *gate.Gate
	// AppendLimit is the largest message APPEND accepts, in octets
	// (default DefaultAppendLimit); it is advertised as APPENDLIMIT.
	AppendLimit int64
	// MaxLineLength bounds one command line (default DefaultMaxLineLength,
	// at most 48 KiB, which is what go-imap parses).
	MaxLineLength int
	Timeouts      Timeouts
	// SortCacheBytes bounds the header fields SORT and THREAD keep for
	// every session of the server (default DefaultSortCacheBytes, about
	// 120,000 messages' worth).
	SortCacheBytes int64

	sorts     *sortCache // SORT and THREAD's header fields, all sessions'
	mu        sync.Mutex
	started   bool
	lib       *imapserver.Server
	gate      *gate.Gate
	tlsConfig *tls.Config
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
	lib, cfg := s.lib, s.tlsConfig
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
	var inner net.Listener = gl
	if implicitTLS {
		inner = tls.NewListener(gl, cfg)
	}
	err = lib.Serve(&listener{Listener: inner, srv: s})
	if s.gate.Closing() {
		return ErrServerClosed
	}
	if err == nil {
		// go-imap returns nil when the listener was closed under it.
		return net.ErrClosed
	}
	return err
}

// listener hands go-imap a front for every connection the gate admits.
type listener struct {
	net.Listener
	srv *Server
}

func (l *listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newFrontConn(l.srv, nc, gate.ConnOf(nc)), nil
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
