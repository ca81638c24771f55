package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/userdb"
)

// Role is what a listener is for; it decides AUTH, relay and reply policy.
type Role int

const (
	// RoleMTA is SMTP on port 25: mail from the world for local domains.
	RoleMTA Role = iota
	// RoleSubmission is the message submission agent (587, 465).
	RoleSubmission
	// RoleLMTP is LMTP for a trusted MTA.
	RoleLMTP
)

func (r Role) String() string {
	switch r {
	case RoleMTA:
		return "mta"
	case RoleSubmission:
		return "submission"
	case RoleLMTP:
		return "lmtp"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// Defaults for zero Server fields.
const (
	DefaultMaxMessageBytes  = 32 << 20
	DefaultMaxRecipients    = 100 // RFC 5321 4.5.3.1.8: at least 100 must be accepted
	DefaultMaxLineLength    = 8192
	DefaultReadTimeout      = 5 * time.Minute // RFC 5321 4.5.3.2.7
	DefaultWriteTimeout     = time.Minute
	DefaultMaxConnsPerIP    = 20
	DefaultMaxErrors        = 20 // like Postfix's smtpd_hard_error_limit
	DefaultMaxAuthFailures  = 3
	DefaultMemorySpoolBytes = 256 << 10
)

// ErrServerClosed is returned by Serve and ServeTLS after Shutdown or Close.
var ErrServerClosed = errors.New("smtp: server closed")

// Server is one SMTP, submission or LMTP listener configuration. Fields are
// read when the first Serve starts and must not change afterwards. The zero
// value of every field but Directory and Agent works.
type Server struct {
	Role Role
	// Hostname is the name in the greeting and Received headers (default:
	// os.Hostname).
	Hostname  string
	Directory userdb.Directory
	Agent     delivery.Agent
	// TLSConfig enables STARTTLS (and is required by ServeTLS). Versions
	// below TLS 1.2 are never negotiated, whatever it says.
	TLSConfig *tls.Config
	// AllowInsecureAuth offers AUTH without TLS; for tests and loopback.
	AllowInsecureAuth bool
	// MyNetworks are the client networks the MTA relays for without AUTH
	// (Postfix's mynetworks).
	MyNetworks []netip.Prefix
	// SkipHeaderSenderCheck lets authenticated sessions put addresses
	// their account may not send as into the From and Sender header
	// fields. MAIL FROM is checked whatever it says.
	SkipHeaderSenderCheck bool
	// MaxMessageBytes limits a message (default DefaultMaxMessageBytes).
	MaxMessageBytes int64
	// MaxRecipients limits recipients per message (default 100).
	MaxRecipients int
	// MaxLineLength limits command and message lines, CRLF included
	// (default 8192). A longer line closes the connection.
	MaxLineLength int
	// ReadTimeout bounds the wait for every read from the client: idle time
	// between commands and stalls within a message (default 5m).
	ReadTimeout time.Duration
	// WriteTimeout bounds every write to the client (default 1m).
	WriteTimeout time.Duration
	// MaxConnsPerIP limits simultaneous connections from one client address
	// (default 20; negative: unlimited). Unix-socket clients are not limited.
	MaxConnsPerIP int
	// MaxErrors is how many refused commands a connection may cause before
	// it is closed with 421 (default 20).
	MaxErrors int
	// MaxAuthFailures is how many failed AUTH a connection may try before it
	// is closed with 421 (default 3).
	MaxAuthFailures int
	// Logins is the login service every AUTH goes through (one shared
	// with IMAP and POP3); nil guards nothing, for tests.
	Logins login.Guard
	// Logger receives one line per transaction and per notable event; nil
	// discards.
	Logger *slog.Logger
	// SpoolDir holds messages larger than MemorySpoolBytes while they are
	// delivered (default os.TempDir()). Files are unlinked on creation.
	SpoolDir string
	// MemorySpoolBytes is the largest message kept in memory (default 256
	// KiB).
	MemorySpoolBytes int

	initOnce sync.Once
	initErr  error
	gs       *gosmtp.Server
	log      *slog.Logger
	tlsConf  *tls.Config
	baseCtx  context.Context
	cancel   context.CancelFunc

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	conns     map[*trackedConn]struct{}
	perIP     map[netip.Addr]int
	connsDone chan struct{} // closed when conns becomes empty while closing
}

func (s *Server) init() error {
	s.initOnce.Do(func() { s.initErr = s.setup() })
	return s.initErr
}

func (s *Server) setup() error {
	if s.Directory == nil || s.Agent == nil {
		return errors.New("smtp: Server needs a Directory and an Agent")
	}
	s.log = s.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("proto", "smtp", "role", s.Role.String())
	if s.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		s.Hostname = h
	}
	if s.MaxMessageBytes <= 0 {
		s.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if s.MaxRecipients <= 0 {
		s.MaxRecipients = DefaultMaxRecipients
	}
	if s.MaxLineLength <= 0 {
		s.MaxLineLength = DefaultMaxLineLength
	}
	if s.ReadTimeout <= 0 {
		s.ReadTimeout = DefaultReadTimeout
	}
	if s.WriteTimeout <= 0 {
		s.WriteTimeout = DefaultWriteTimeout
	}
	if s.MaxConnsPerIP == 0 {
		s.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if s.MaxErrors <= 0 {
		s.MaxErrors = DefaultMaxErrors
	}
	if s.MaxAuthFailures <= 0 {
		s.MaxAuthFailures = DefaultMaxAuthFailures
	}
	if s.SpoolDir == "" {
		s.SpoolDir = os.TempDir()
	}
	if s.MemorySpoolBytes <= 0 {
		s.MemorySpoolBytes = DefaultMemorySpoolBytes
	}
	if s.TLSConfig != nil {
		s.tlsConf = s.TLSConfig.Clone()
		if s.tlsConf.MinVersion < tls.VersionTLS12 {
			s.tlsConf.MinVersion = tls.VersionTLS12
		}
	}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	s.listeners = make(map[net.Listener]struct{})
	s.conns = make(map[*trackedConn]struct{})
	s.perIP = make(map[netip.Addr]int)

	gs := gosmtp.NewServer(backend{s})
	gs.Domain = s.Hostname
	gs.LMTP = s.Role == RoleLMTP
	gs.TLSConfig = s.tlsConf
	gs.MaxMessageBytes = s.MaxMessageBytes
	gs.MaxRecipients = s.MaxRecipients
	gs.MaxLineLength = s.MaxLineLength
	// go-smtp's own TLS rule answers 523; the session decides instead, so
	// that AUTH before TLS gets RFC 4954's 538 5.7.11 and LMTP none at all.
	gs.AllowInsecureAuth = true
	// The connection wrapper restarts these deadlines on every read and
	// write; go-smtp needs ReadTimeout set to answer a timeout with 421.
	gs.ReadTimeout = s.ReadTimeout
	gs.WriteTimeout = s.WriteTimeout
	gs.EnableSMTPUTF8 = true
	gs.ErrorLog = errorLog{s.log}
	s.gs = gs
	return nil
}

// Serve accepts connections on l until Shutdown or Close; STARTTLS is
// offered when TLSConfig is set. It returns ErrServerClosed after Shutdown or
// Close.
func (s *Server) Serve(l net.Listener) error { return s.serve(l, false) }

// ServeTLS is Serve for implicit TLS (submission on 465): every connection
// starts with a TLS handshake using TLSConfig. l is a plain listener.
func (s *Server) ServeTLS(l net.Listener) error { return s.serve(l, true) }

func (s *Server) serve(l net.Listener, implicitTLS bool) error {
	if err := s.init(); err != nil {
		return err
	}
	if implicitTLS && s.tlsConf == nil {
		return errors.New("smtp: ServeTLS needs a TLSConfig")
	}
	tl := &listener{Listener: l, srv: s, implicitTLS: implicitTLS}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[tl] = struct{}{}
	s.mu.Unlock()
	s.log.Info("listening", "addr", l.Addr().String(), "tls", implicitTLS)

	err := s.gs.Serve(tl)

	s.mu.Lock()
	delete(s.listeners, tl)
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return ErrServerClosed
	}
	return err
}

// shutdownPoll is how often Shutdown looks for connections that finished
// their transaction and can be closed.
const shutdownPoll = 20 * time.Millisecond

// Shutdown stops accepting connections, closes idle ones, lets every
// transaction in flight finish (its final reply is written before its
// connection is closed) and returns when all connections are gone. When ctx
// ends first, it closes everything as Close does and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.init(); err != nil {
		return err
	}
	err := s.stopListening()
	ticker := time.NewTicker(shutdownPoll)
	defer ticker.Stop()
	for {
		if s.closeIdle() {
			return err
		}
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// Close closes the listeners and every connection at once, cancelling the
// context of directory and delivery calls in flight.
func (s *Server) Close() error {
	if err := s.init(); err != nil {
		return err
	}
	err := s.stopListening()
	s.cancel()
	s.mu.Lock()
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return err
}

func (s *Server) stopListening() error {
	s.mu.Lock()
	s.closing = true
	var err error
	for l := range s.listeners {
		if cerr := l.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
			err = cerr
		}
	}
	s.mu.Unlock()
	return err
}

// closeIdle closes the connections without a transaction in flight and
// reports whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	conns := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.closeIfIdle()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns) == 0
}

// shuttingDown reports whether Shutdown or Close has been called.
func (s *Server) shuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// trusted reports whether ip is inside MyNetworks.
func (s *Server) trusted(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.MyNetworks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// errorLog carries go-smtp's internal error reports (panics, connection
// errors) into the structured log.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.log.Warn("go-smtp", "msg", fmt.Sprintf(format, v...))
}

func (e errorLog) Println(v ...any) { e.log.Warn("go-smtp", "msg", fmt.Sprint(v...)) }

// backend is go-smtp's Backend: one session per greeted connection (and a
// fresh one after STARTTLS).
type backend struct{ s *Server }

func (b backend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	return b.s.newSession(c)
}

var _ io.Closer = (*trackedConn)(nil)
