package imap

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"

	goimap "github.com/emersion/go-imap/v2"
	gosasl "github.com/emersion/go-sasl"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/imap/wire"
	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/protocols/sasl"
	"github.com/vmaild/vmaild/userdb"
)

func authMechanisms(tlsOrInsecure bool) []string { return sasl.Mechanisms(tlsOrInsecure) }

func (c *conn) cmdCapability(cmd *wire.Command) error {
	c.enc.Capability(c.capabilities())
	return nil
}

func (c *conn) cmdNoop(cmd *wire.Command) error { return nil }

func (c *conn) cmdLogout(cmd *wire.Command) error {
	c.enc.Status("*", goimap.StatusResponseTypeBye, "", "Logging out")
	c.logout = true
	return nil
}

// maxIDFields bounds what ID logs of the client's fields (RFC 2971
// allows 30 of at most 30 and 1024 octets; the reader bounds the rest).
const maxIDFields = 30

// maxIDLogValue bounds each logged ID value.
const maxIDLogValue = 128

func (c *conn) cmdID(cmd *wire.Command) error {
	id := cmd.Args.(*wire.ID)
	if len(id.Fields) > maxIDFields {
		return bad("Too many ID fields")
	}
	var attrs []any
	for _, f := range id.Fields {
		if len(f.Key) > 30 || f.Value != nil && len(*f.Value) > 1024 {
			return bad("ID field too long")
		}
		v := "NIL"
		if f.Value != nil {
			v = *f.Value
		}
		attrs = append(attrs, strings.ToLower(f.Key), v[:min(len(v), maxIDLogValue)])
	}
	// Logged once per connection, under "id.": the fields are the
	// client's words, which must neither flood the log nor pass for the
	// session's own attributes (an ID "user" field).
	if len(attrs) > 0 && !c.idLogged {
		c.idLogged = true
		c.log.Info("imap client id", slog.Group("id", attrs...))
	}
	name := "vmaild"
	c.enc.ID([]wire.IDField{{Key: "name", Value: &name}})
	return nil
}

func (c *conn) cmdStartTLS(cmd *wire.Command) error {
	switch {
	case c.srv.tlsConfig == nil:
		return bad("STARTTLS is not available on this listener")
	case c.tls != nil:
		return bad("TLS is already active")
	case c.zr != nil:
		// Back from UNAUTHENTICATE with DEFLATE still on: TLS would go
		// under the inflater for reads only (RFC 4978 wants TLS first).
		return bad("STARTTLS is not possible once COMPRESS is active")
	}
	c.enc.Status(cmd.Tag, goimap.StatusResponseTypeOK, "", "Begin TLS negotiation now")
	if !c.startTLS() {
		return errConnDone
	}
	return errAnswered
}

var errPrivacyRequired = no(goimap.ResponseCodePrivacyRequired, "TLS is required to log in")

func (c *conn) cmdLogin(cmd *wire.Command) error {
	if !c.tlsOrInsecure() {
		return errPrivacyRequired
	}
	a := cmd.Args.(*wire.Login)
	if err := c.authenticate(a.Username, a.Password); err != nil {
		return err
	}
	c.complete(wire.CodeCapability(c.capabilities()), "Logged in")
	return nil
}

// authenticate checks a password through the directory under the shared
// login service and opens the account's mailbox.
func (c *conn) authenticate(username, password string) error {
	var acct *userdb.Account
	check := sasl.Authenticator(func(ctx context.Context, u, p string) error {
		a, err := c.srv.Directory.Authenticate(ctx, u, p)
		if err == nil && a == nil {
			err = userdb.ErrNotFound
		}
		acct = a
		return err
	})
	err := check.Guarded(c.srv.Logins, c.ip)(c.ctx, username, password)
	switch {
	case err == nil:
	case errors.Is(err, login.ErrBusy):
		c.log.Warn("imap login refused: too many logins being verified", "user", username)
		return errBusy
	case userdb.Temporary(err) || c.ctx.Err() != nil:
		c.log.Warn("imap login: directory unavailable", "user", username, "err", err)
		return errDirectory
	default:
		c.log.Info("imap login failed", "user", username, "err", err)
		return errAuthFailed
	}
	a := store.Account{Address: acct.Address, Maildir: acct.Maildir}
	var q *liveQuota
	if c.srv.Quotas != nil {
		q = &liveQuota{dir: c.srv.Directory, quotas: c.srv.Quotas, address: acct.Address}
		a.Quota = q
	}
	mb, err := c.srv.Store.OpenMailbox(c.ctx, a)
	if err != nil {
		c.log.Error("imap login: opening mailbox", "user", acct.Address, "err", err)
		return errMailboxDown
	}
	c.user, c.mb, c.quota = acct.Address, mb, q
	c.log = c.log.With("user", acct.Address)
	c.authed = true
	c.r.SetLimits(c.srv.limits())
	c.bad = 0
	c.log.Info("imap login", "tls", c.usingTLS())
	return nil
}

func (c *conn) cmdAuthenticate(cmd *wire.Command) error {
	a := cmd.Args.(*wire.Authenticate)
	if !c.tlsOrInsecure() {
		return errPrivacyRequired
	}
	mech := ""
	for _, m := range authMechanisms(true) {
		if strings.EqualFold(m, a.Mechanism) {
			mech = m
		}
	}
	if mech == "" {
		return no("", "Unsupported authentication mechanism")
	}
	srv, err := sasl.NewServer(c.ctx, mech, true, func(ctx context.Context, username, password string) error {
		return c.authenticate(username, password)
	})
	if err != nil {
		return no("", "Unsupported authentication mechanism")
	}
	resp, haveResp := a.InitialResponse, a.HasInitial
	for {
		var challenge []byte
		var done bool
		if haveResp {
			challenge, done, err = srv.Next(resp)
		} else {
			challenge, done, err = srv.Next(nil)
		}
		if err != nil {
			return saslError(err)
		}
		if done {
			break
		}
		c.enc.ContinueBase64(base64.StdEncoding.EncodeToString(challenge))
		if err := c.enc.Flush(); err != nil {
			return errConnDone
		}
		line, err := c.r.ReadLine()
		if err != nil {
			var werr *wire.Error
			if errors.As(err, &werr) {
				return imapErr(werr.Type, werr.Code, werr.Text) // TOOBIG stays
			}
			return errConnDone
		}
		if line == "*" {
			return bad("Authentication cancelled")
		}
		resp, err = base64.StdEncoding.DecodeString(line)
		if err != nil {
			return bad("Invalid base64 in SASL response")
		}
		haveResp = true
	}
	c.complete(wire.CodeCapability(c.capabilities()), "Logged in")
	return nil
}

// saslError turns SASL errors into IMAP replies.
func saslError(err error) error {
	var ie *goimap.Error
	switch {
	case errors.As(err, &ie):
		return err
	case errors.Is(err, sasl.ErrMalformed), errors.Is(err, gosasl.ErrUnexpectedClientResponse):
		return bad("Malformed SASL response")
	}
	return errAuthFailed
}

func (c *conn) cmdUnauthenticate(cmd *wire.Command) error {
	if !c.gc.Unauthenticated() {
		return no(goimap.ResponseCodeLimit, "Too many clients not logged in, try again later")
	}
	c.unselect()
	c.authed = false
	c.r.SetLimits(c.srv.preLoginLimits())
	c.user, c.mb, c.quota = "", nil, nil
	c.log = c.preLog
	c.condstore, c.qresync, c.utf8, c.rev2 = false, false, false, false
	return nil
}

func (c *conn) cmdEnable(cmd *wire.Command) error {
	var done []goimap.Cap
	for _, cp := range cmd.Args.(*wire.Enable).Caps {
		switch strings.ToUpper(string(cp)) {
		case "CONDSTORE":
			if !c.condstore {
				c.enableCondstore()
				done = append(done, goimap.CapCondStore)
			}
		case "QRESYNC":
			if !c.qresync {
				c.qresync = true
				c.enableCondstore()
				done = append(done, goimap.CapQResync)
			}
		case "UTF8=ACCEPT":
			if !c.utf8 {
				c.utf8 = true
				done = append(done, "UTF8=ACCEPT")
			}
		case "IMAP4REV2":
			if !c.rev2 {
				c.rev2 = true
				done = append(done, goimap.CapIMAP4rev2)
			}
		}
	}
	c.enc.Enabled(done)
	return nil
}

func (c *conn) cmdCompress(cmd *wire.Command) error {
	if cmd.Args.(*wire.Compress).Mechanism != "DEFLATE" {
		return bad("Unknown compression mechanism")
	}
	if c.zr != nil {
		return no("COMPRESSIONACTIVE", "Compression is already active")
	}
	maxTotal, maxNet := c.srv.MaxCompressed, c.srv.MaxCompressedPerNetwork
	if maxTotal == 0 {
		maxTotal = DefaultMaxCompressed
	}
	if maxNet == 0 {
		maxNet = DefaultMaxCompressedPerNetwork
	}
	if !c.srv.compressed.acquire(c.gc.Network(), maxTotal, maxNet) {
		c.log.Info("imap compress refused: too many compressed sessions")
		return no(goimap.ResponseCodeLimit, "Too many compressed sessions, go on without compression")
	}
	c.compressHeld = true
	c.enc.Status(cmd.Tag, goimap.StatusResponseTypeOK, "", "DEFLATE active")
	if err := c.startCompress(); err != nil {
		c.log.Warn("imap compress", "err", err)
		return errConnDone
	}
	return errAnswered
}

func (c *conn) cmdNamespace(cmd *wire.Command) error {
	c.enc.Namespace(&goimap.NamespaceData{
		Personal: []goimap.NamespaceDescriptor{{Prefix: "", Delim: delim}},
	})
	return nil
}
