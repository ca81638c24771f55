package smtp

import (
	"context"
	"errors"

	gosasl "github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/protocols/sasl"
	"github.com/vmaild/vmaild/userdb"
)

var (
	errAuthNeedsTLS   = smtpErr(538, "5.7.11", "Encryption required for requested authentication mechanism")
	errAuthInTx       = smtpErr(503, "5.5.1", "AUTH not allowed during a mail transaction")
	errAuthNotHere    = smtpErr(502, "5.5.1", "AUTH not available on this service")
	errAuthFailed     = smtpErr(535, "5.7.8", "Authentication credentials invalid")
	errAuthMalformed  = smtpErr(501, "5.5.2", "Malformed authentication response")
	errAuthTemporary  = smtpErr(454, "4.7.0", "Temporary authentication failure, try again later")
	errAuthTooMany    = smtpErr(421, "4.7.0", "Too many authentication failures, closing connection")
	errAuthUnknownMec = smtpErr(504, "5.5.4", "Unsupported authentication mechanism")
)

// AuthMechanisms is what EHLO advertises: nothing on LMTP, nothing before
// TLS unless the listener allows plaintext AUTH.
func (ss *session) AuthMechanisms() []string {
	if ss.srv.Role == RoleLMTP {
		return nil
	}
	return sasl.Mechanisms(ss.authOffered())
}

// Auth starts one AUTH exchange. Every outcome leaves as an SMTPError so
// that go-smtp never shows the client an internal error text.
func (ss *session) Auth(mech string) (gosasl.Server, error) {
	if ss.srv.Role == RoleLMTP {
		return nil, ss.refuse(errAuthNotHere)
	}
	if !ss.authOffered() {
		return nil, ss.refuse(errAuthNeedsTLS)
	}
	ss.mu.Lock()
	inTx := ss.tx != nil
	ss.mu.Unlock()
	if inTx {
		return nil, ss.refuse(errAuthInTx)
	}
	var authed *userdb.Account
	check := sasl.Authenticator(func(ctx context.Context, username, password string) error {
		acct, err := ss.srv.Directory.Authenticate(ctx, username, password)
		if err == nil && acct == nil {
			err = userdb.ErrBadCredentials
		}
		if err == nil {
			authed = acct
		}
		return err
	}).Guarded(ss.srv.Logins, ss.tc.ip)
	// The login is noted before the login service runs, so a delayed or
	// refused attempt is logged with the account it concerns.
	noted := func(ctx context.Context, username, password string) error {
		ss.mu.Lock()
		ss.login = username
		ss.mu.Unlock()
		return check(ctx, username, password)
	}
	srv, err := sasl.NewServer(ss.ctx(), mech, true, noted)
	if err != nil {
		return nil, ss.refuse(errAuthUnknownMec)
	}
	return &authExchange{ss: ss, inner: srv, account: &authed}, nil
}

// authExchange maps the outcome of a SASL exchange to a reply and, on
// success, makes the session authenticated.
type authExchange struct {
	ss      *session
	inner   gosasl.Server
	account **userdb.Account
}

func (a *authExchange) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := a.inner.Next(response)
	ss := a.ss
	if err == nil {
		if done {
			acct := *a.account
			ss.mu.Lock()
			ss.account = acct
			ss.mu.Unlock()
			ss.tc.Authenticated()
			ss.log.Info("authenticated", "user", acct.Address)
		}
		return challenge, done, nil
	}
	ss.mu.Lock()
	name := ss.login
	ss.mu.Unlock()
	switch {
	case errors.Is(err, login.ErrBusy):
		ss.log.Warn("authentication refused: too many logins being verified", "login", name)
		return nil, true, errAuthTemporary
	case userdb.Temporary(err), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		ss.log.Warn("authentication unavailable", "login", name, "err", err)
		return nil, true, errAuthTemporary
	case errors.Is(err, sasl.ErrMalformed), errors.Is(err, gosasl.ErrUnexpectedClientResponse):
		ss.log.Info("malformed authentication", "err", err)
		return nil, true, ss.authFailure(errAuthMalformed)
	}
	// The directory's error names the address but never the password.
	ss.log.Info("authentication failed", "login", name, "err", err)
	return nil, true, ss.authFailure(errAuthFailed)
}

// authFailure counts a failed AUTH on this connection; past the cap the
// connection is closed, so guessing needs a new connection (and the
// limiter's delay) every few attempts.
func (ss *session) authFailure(e *gosmtp.SMTPError) error {
	ss.mu.Lock()
	ss.authFailures++
	over := ss.authFailures >= ss.srv.MaxAuthFailures
	ss.mu.Unlock()
	if over {
		return ss.hangUp(errAuthTooMany)
	}
	return ss.refuse(e)
}
