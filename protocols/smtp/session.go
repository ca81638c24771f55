package smtp

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/protocols/sendlimit"
	"github.com/vmaild/vmaild/userdb"
)

// session is go-smtp's Session for one greeted connection. go-smtp calls
// Data for BDAT on its own goroutine while it keeps reading commands, so
// the transaction state is guarded by mu.
type session struct {
	srv  *Server
	conn *gosmtp.Conn
	tc   *trackedConn
	log  *slog.Logger

	mu           sync.Mutex
	account      *userdb.Account // after a successful AUTH
	login        string          // the login of the AUTH in progress, for logs
	errors       int
	authFailures int
	txCount      int
	tx           *transaction
}

// transaction is one MAIL … DATA exchange.
type transaction struct {
	id    string
	start time.Time
	from  string // "" is the null sender
	utf8  bool
	// requireTLS: MAIL FROM had REQUIRETLS (RFC 8689), kept with the
	// message to its remote destinations.
	requireTLS bool
	declared   int64 // SIZE=
	rcpts      []recipient
	refused    int
	done       bool // Data finished and was logged
	// limit is the sending-limit charge of an authenticated sender's
	// message; nil without limits.
	limit *sendlimit.Tx
}

// recipient is one accepted RCPT. raw is what go-smtp handed us and must be
// given back verbatim to the LMTP status collector; addr is what is
// delivered to.
type recipient struct {
	raw   string
	addr  string
	local bool
	// resolved is what the agent resolved at RCPT, handed on to Deliver.
	resolved delivery.Recipient
}

func (s *Server) newSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	tc := connOf(c)
	if tc == nil {
		return nil, &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Internal error"}
	}
	if !printableHelo(c.Hostname()) {
		return nil, &gosmtp.SMTPError{Code: 501, EnhancedCode: gosmtp.EnhancedCode{5, 5, 2}, Message: "Invalid domain in greeting"}
	}
	ss := &session{srv: s, conn: c, tc: tc}
	ss.log = s.log.With("session", tc.id, "client", clientString(tc))
	return ss, nil
}

// connOf finds our connection under go-smtp's, below TLS if any.
func connOf(c *gosmtp.Conn) *trackedConn {
	nc := c.Conn()
	if t, ok := nc.(*tls.Conn); ok {
		nc = t.NetConn()
	}
	tc, _ := nc.(*trackedConn)
	return tc
}

func clientString(tc *trackedConn) string {
	if tc.ip.IsValid() {
		return tc.ip.String()
	}
	if a := tc.RemoteAddr().String(); a != "" && a != "@" {
		return a
	}
	return "local"
}

// printableHelo refuses greetings that would put control characters (NUL
// included) into Received headers and logs.
func printableHelo(h string) bool {
	for i := 0; i < len(h); i++ {
		if h[i] < 0x21 || h[i] == 0x7f {
			return false
		}
	}
	return h != ""
}

func (ss *session) tlsState() (tls.ConnectionState, bool) {
	return ss.conn.TLSConnectionState()
}

// authOffered reports whether AUTH may be used on this connection now.
func (ss *session) authOffered() bool {
	if ss.srv.Role == RoleLMTP {
		return false
	}
	_, isTLS := ss.tlsState()
	return isTLS || ss.srv.AllowInsecureAuth
}

func smtpErr(code int, enhanced string, msg string) *gosmtp.SMTPError {
	return &gosmtp.SMTPError{Code: code, EnhancedCode: parseEnhanced(enhanced), Message: msg}
}

// parseEnhanced turns "4.2.2" into go-smtp's form; anything malformed
// becomes "not set" and go-smtp derives X.0.0 from the code.
func parseEnhanced(s string) gosmtp.EnhancedCode {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return gosmtp.EnhancedCodeNotSet
	}
	var ec gosmtp.EnhancedCode
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 {
			return gosmtp.EnhancedCodeNotSet
		}
		ec[i] = n
	}
	return ec
}

var (
	errShuttingDown  = smtpErr(421, "4.3.2", "Service shutting down, try again later")
	errTooManyErrors = smtpErr(421, "4.7.0", "Too many errors, closing connection")
	errDirectoryDown = smtpErr(451, "4.3.0", "Directory temporarily unavailable, try again later")
	errNestedMail    = smtpErr(503, "5.5.1", "Nested MAIL command; RSET first")
	errAuthRequired  = smtpErr(530, "5.7.0", "Authentication required")
	errNullSender    = smtpErr(553, "5.7.1", "The null sender is not accepted from authenticated users")
	errNeedUTF8      = smtpErr(553, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter")
	errRequireTLS    = smtpErr(530, "5.7.10", "REQUIRETLS needs a TLS session")
	errRelayDenied   = smtpErr(554, "5.7.1", "Relay access denied")
	errNotLocalLMTP  = smtpErr(550, "5.1.2", "Not a local domain")
	errSizeExceeded  = smtpErr(552, "5.3.4", "Message size exceeds the limit")
)

// refuse counts a refused command and returns the reply for it, or 421
// (closing the connection after it is written) when the client has been
// refused too often.
func (ss *session) refuse(e *gosmtp.SMTPError) error {
	ss.mu.Lock()
	ss.errors++
	over := ss.errors >= ss.srv.MaxErrors
	ss.mu.Unlock()
	if over {
		ss.log.Warn("too many errors, disconnecting", "errors", ss.srv.MaxErrors)
		return ss.hangUp(errTooManyErrors)
	}
	return e
}

// hangUp returns e and has the connection closed once e is written.
func (ss *session) hangUp(e *gosmtp.SMTPError) error {
	ss.tc.closeAfterWrite.Store(true)
	return e
}

func (ss *session) ctx() context.Context { return ss.tc.ctx }

func (ss *session) Mail(from string, opts *gosmtp.MailOptions) error {
	ss.mu.Lock()
	nested := ss.tx != nil
	account := ss.account
	ss.mu.Unlock()
	if nested {
		return ss.refuse(errNestedMail)
	}
	if ss.srv.Role == RoleSubmission && account == nil {
		return ss.refuse(errAuthRequired)
	}
	if opts != nil && opts.Size > ss.srv.MaxMessageBytes {
		return ss.refuse(errSizeExceeded)
	}
	utf8 := opts != nil && opts.UTF8
	requireTLS := opts != nil && opts.RequireTLS
	if _, ok := ss.tlsState(); requireTLS && !ok {
		// go-smtp advertises REQUIRETLS only over TLS but takes the
		// parameter anyway: a demand for TLS made in the clear is
		// refused: RFC 8689 is for sessions that TLS protects.
		return ss.refuse(errRequireTLS)
	}
	addr := ""
	if from != "" {
		a, e := checkAddress(from, true)
		if e != nil {
			return ss.refuse(e)
		}
		if !utf8 && !isASCII(from) {
			return ss.refuse(errNeedUTF8)
		}
		addr = a.canonical()
	}
	if account != nil {
		if e := ss.checkEnvelopeSender(addr, account); e != nil {
			if e.Code/100 == 4 {
				return e
			}
			return ss.refuse(e)
		}
	}
	var limit *sendlimit.Tx
	if account != nil && ss.srv.SendLimits != nil {
		lt, e := ss.beginLimited(account.Address)
		if e != nil {
			return e
		}
		limit = lt
	}
	if !ss.tc.beginTx() {
		if limit != nil {
			limit.Abort()
		}
		return ss.hangUp(errShuttingDown)
	}
	ss.mu.Lock()
	ss.txCount++
	ss.tx = &transaction{
		id:    fmt.Sprintf("%s.%d", ss.tc.id, ss.txCount),
		start: time.Now(),
		from:  addr,
		utf8:  utf8,
		limit: limit,

		requireTLS: requireTLS,
	}
	if opts != nil {
		ss.tx.declared = opts.Size
	}
	ss.mu.Unlock()
	return nil
}

func (ss *session) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	ss.mu.Lock()
	tx := ss.tx
	ss.mu.Unlock()
	if tx == nil {
		// go-smtp checks MAIL first; this is only reached after a MAIL
		// we refused.
		return ss.refuse(smtpErr(503, "5.5.1", "Need MAIL before RCPT"))
	}
	rc, e := ss.checkRecipient(to, tx.utf8)
	if e == nil {
		e = ss.screen(tx, rc)
	}
	if e == nil && tx.limit != nil {
		// Last: only a recipient every other check accepted is charged.
		e = ss.chargeRecipient(tx.limit, to)
	}
	if e == nil {
		rc.resolved.ORCPT = to
		if opts != nil && opts.OriginalRecipient != "" {
			rc.resolved.ORCPT = opts.OriginalRecipient
		}
	}
	ss.mu.Lock()
	if e != nil {
		tx.refused++
	} else {
		tx.rcpts = append(tx.rcpts, rc)
	}
	ss.mu.Unlock()
	switch {
	case e == nil:
		return nil
	case e.Code/100 == 4:
		// Temporary refusals are the server's trouble, not the client's.
		return e
	}
	return ss.refuse(e)
}

// checkRecipient applies the address rules and the relay policy.
func (ss *session) checkRecipient(to string, utf8 bool) (recipient, *gosmtp.SMTPError) {
	a, e := checkAddress(to, false)
	if e != nil {
		return recipient{}, e
	}
	if !utf8 && !isASCII(to) {
		return recipient{}, errNeedUTF8
	}
	srsBounce := false
	if r := ss.srv.SRS; r != nil && r.Owns(a.remote()) {
		orig, e := ss.reverseSRS(a)
		if e != nil {
			return recipient{}, e
		}
		a, srsBounce = orig, true
	}
	// The domain, the resolution and the quota check share one deadline.
	ctx, cancel := userdb.Bound(ss.ctx(), ss.srv.Directory)
	defer cancel()
	local, err := ss.srv.Directory.IsLocalDomain(ctx, a.domain)
	if err != nil {
		if !userdb.Temporary(err) {
			// IsLocalDomain has no "no" other than false; any error is
			// the directory failing.
			ss.log.Warn("domain lookup failed", "domain", a.domain, "err", err)
		} else {
			ss.log.Warn("directory unavailable at RCPT", "domain", a.domain, "err", err)
		}
		return recipient{}, errDirectoryDown
	}
	if local {
		addr := a.canonical()
		resolved, o := ss.srv.Agent.Resolve(ctx, addr)
		if o.Failed() {
			ss.log.Info("recipient refused", "rcpt", addr, "outcome", o.String())
			return recipient{}, Reply(o)
		}
		return recipient{raw: to, addr: addr, local: true, resolved: resolved}, nil
	}
	switch ss.srv.Role {
	case RoleLMTP:
		return recipient{}, errNotLocalLMTP
	case RoleMTA:
		ss.mu.Lock()
		authed := ss.account != nil
		ss.mu.Unlock()
		if !authed && !srsBounce && !ss.srv.trusted(ss.tc.ip) {
			ss.log.Info("relay denied", "rcpt", to)
			return recipient{}, errRelayDenied
		}
	}
	// Remote local parts keep their case: only the remote host may fold it.
	return recipient{raw: to, addr: a.remote(), resolved: delivery.Relay(a.remote(), to)}, nil
}

func (ss *session) Reset() {
	ss.mu.Lock()
	tx := ss.tx
	ss.tx = nil
	logged := tx == nil || tx.done
	ss.mu.Unlock()
	if tx != nil {
		if tx.limit != nil {
			// After an accepted message Commit came first and this
			// gives nothing back.
			tx.limit.Abort()
		}
		if !logged {
			ss.log.Info("transaction aborted", "tx", tx.id, "from", tx.from,
				"rcpts", len(tx.rcpts), "refused", tx.refused,
				"duration", time.Since(tx.start))
		}
		ss.tc.endTx()
	}
}

func (ss *session) Logout() error {
	ss.Reset()
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
