package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/inbound"
	"github.com/vmaild/vmaild/backend/srs"
	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/protocols/sendlimit"
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
	DefaultMaxErrors        = 20 // like Postfix's smtpd_hard_error_limit
	DefaultMaxAuthFailures  = 3
	DefaultMemorySpoolBytes = 256 << 10
)

// ErrServerClosed is returned by Serve after Shutdown or Close, and by a
// second Shutdown; it is the gate's ErrClosed, the same for every protocol.
var ErrServerClosed = gate.ErrClosed

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
	// SRS, when set, reverses recipients that are SRS addresses in its
	// domain (bounces of mail the delivery agent forwarded): a valid one
	// is delivered to the original sender, relayed if that is remote,
	// whoever the client; a forged, expired or malformed one is refused
	// with 550 5.7.1 and the reason. Nil: such addresses are ordinary.
	SRS *srs.Rewriter
	// MyNetworks are the client networks the MTA relays for without AUTH
	// (Postfix's mynetworks).
	MyNetworks []netip.Prefix
	// Screens judge unauthenticated MTA clients outside MyNetworks at each
	// RCPT, in order (DNS blocklists, greylisting); nil screens nothing.
	Screens []Screen
	// Screened, when set, is told each screen's result (ScreenPassed,
	// ScreenDeferred, ScreenRefused): the metrics.
	Screened func(screen, result string)
	// SkipHeaderSenderCheck lets authenticated sessions put addresses
	// their account may not send as into the From and Sender header
	// fields. MAIL FROM is checked whatever it says.
	SkipHeaderSenderCheck bool
	// SendLimits bounds what authenticated sessions send (messages and
	// recipients per hour, recipients per message), counted per account
	// and per domain across every listener sharing it; nil: no limits.
	SendLimits *sendlimit.Limiter
	// MaxMessageBytes limits a message (default DefaultMaxMessageBytes).
	MaxMessageBytes int64
	// MaxRecipients limits recipients per message (default 100).
	MaxRecipients int
	// MaxLineLength limits command and message lines, CRLF included
	// (default 8192). A longer line closes the connection.
	MaxLineLength int
	// ReadTimeout bounds each stall within a message, and the wait for a
	// whole command line when the gate's command deadline is longer
	// (default 5m).
	ReadTimeout time.Duration
	// WriteTimeout bounds every write to the client (default 1m).
	WriteTimeout time.Duration
	// Gate admits connections and bounds how long they last; share one
	// between every listener of the process. Nil: a gate of this Server's
	// own with the default limits.
	Gate *gate.Gate
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
	// Checks run at the end of DATA, after the message is spooled and
	// before the reply (sender authentication, scanners, milters; see
	// package inbound), for the roles each step names. Nil checks nothing.
	Checks *inbound.Pipeline

	initOnce sync.Once
	initErr  error
	gs       *gosmtp.Server
	log      *slog.Logger
	tlsConf  *tls.Config
	gate     *gate.Gate
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
	s.gate = s.Gate
	if s.gate == nil {
		s.gate = &gate.Gate{Logger: s.log}
	}

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
	// go-smtp sets ReadTimeout before every command line, which makes it
	// the time for a whole line to arrive (the connection wrapper lets it
	// stand, except within a message); a timeout is answered with 421.
	gs.ReadTimeout = s.ReadTimeout
	if d := s.gate.CommandDeadline(); d > 0 && d < gs.ReadTimeout {
		gs.ReadTimeout = d
	}
	gs.WriteTimeout = s.WriteTimeout
	gs.EnableSMTPUTF8 = true
	// REQUIRETLS (RFC 8689) where mail enters to be relayed; go-smtp
	// advertises it only over TLS. LMTP is final delivery.
	gs.EnableREQUIRETLS = s.Role != RoleLMTP
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
	gl, err := s.gate.Listen(l, s.service(implicitTLS))
	if err != nil {
		return err
	}
	err = s.gs.Serve(&listener{Listener: gl, srv: s, implicitTLS: implicitTLS})
	if s.gate.Closing() {
		return ErrServerClosed
	}
	return err
}

// service describes a listener to the gate: named as in the
// configuration, refusing with 421 (RFC 5321, 3.8), and without logins on
// the MTA and LMTP.
func (s *Server) service(implicitTLS bool) gate.Service {
	svc := gate.Service{Name: "smtp", NoLogin: s.Role != RoleSubmission}
	switch {
	case s.Role == RoleSubmission && implicitTLS:
		svc.Name = "submissions"
	case s.Role == RoleSubmission:
		svc.Name = "submission"
	case s.Role == RoleLMTP:
		svc.Name = "lmtp"
	case implicitTLS:
		svc.Name = "smtps"
	}
	if !implicitTLS {
		svc.Refusal = func(text string) string { return "421 4.7.0 " + s.Hostname + " " + text + "\r\n" }
	}
	return svc
}

// Shutdown stops the gate the server passes through (every listener of a
// shared Gate): idle connections are closed with 421, every transaction in
// flight finishes (its final reply is written before its connection is
// closed), and it returns when all connections are gone. When ctx ends
// first, it closes everything as Close does and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.init(); err != nil {
		return err
	}
	return s.gate.Shutdown(ctx)
}

// Close closes the gate's listeners and every connection at once,
// cancelling the context of directory and delivery calls in flight.
func (s *Server) Close() error {
	if err := s.init(); err != nil {
		return err
	}
	return s.gate.Close()
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
