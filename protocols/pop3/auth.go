package pop3

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/protocols/sasl"
	"github.com/vmaild/vmaild/userdb"
)

const replyNeedTLS = "-ERR [AUTH] plaintext authentication is not allowed without TLS"

func (c *conn) userCommand(name string) {
	if !c.authAllowed() {
		c.bad(replyNeedTLS)
		return
	}
	if name == "" {
		c.bad("-ERR usage: USER name")
		return
	}
	c.user = name
	c.reply("+OK send PASS")
}

func (c *conn) passCommand(password string) {
	user := c.user
	c.user = ""
	switch {
	case !c.authAllowed():
		c.bad(replyNeedTLS)
	case user == "":
		c.bad("-ERR USER first")
	case password == "":
		c.bad("-ERR usage: PASS password")
	default:
		c.finishLogin(user, c.background(func(ctx context.Context) error {
			return c.authenticator()(ctx, user, password)
		}))
	}
}

// authenticator checks credentials through the Backend under the login
// service and keeps the maildrop of a successful login in c.md. The
// maildrop being locked means the password was right, so the login
// service sees a success.
func (c *conn) authenticator() sasl.Authenticator {
	var inUse error
	check := func(ctx context.Context, username, password string) error {
		md, err := c.srv.Backend.Login(ctx, c.connInfo(), username, password)
		if errors.Is(err, ErrInUse) {
			inUse = err
			return nil
		}
		if err == nil {
			c.md = md
		}
		return err
	}
	guarded := sasl.Authenticator(check).Guarded(c.srv.Logins, c.ip)
	return func(ctx context.Context, username, password string) error {
		c.user = username // for the log only
		if err := guarded(ctx, username, password); err != nil {
			return err
		}
		return inUse
	}
}

// finishLogin answers the outcome of an authentication and, on success,
// locks and opens the maildrop.
func (c *conn) finishLogin(user string, err error) {
	log := c.log.With("user", user)
	c.user = ""
	switch {
	case err == nil:
		c.open(log)
		return
	case c.ctx.Err() != nil:
		c.quit = true // the client is gone
	case errors.Is(err, ErrInUse):
		log.Info("pop3 login refused: maildrop in use")
		c.reply("-ERR [IN-USE] maildrop is locked by another session")
	case errors.Is(err, login.ErrBusy):
		log.Warn("pop3 login refused: too many logins being verified")
		c.reply("-ERR [SYS/TEMP] too many logins at once, try again later")
	case userdb.Temporary(err):
		log.Warn("pop3 login: directory unavailable", "err", err)
		c.reply("-ERR [SYS/TEMP] user directory unavailable, try again later")
	case errors.Is(err, sasl.ErrMalformed):
		log.Info("pop3 login failed", "err", err)
		c.bad("-ERR [AUTH] " + err.Error())
	default:
		log.Info("pop3 login failed", "err", err)
		c.bad("-ERR [AUTH] authentication failed")
	}
	if c.md != nil {
		c.md.Close()
		c.md = nil
	}
}

// open takes the maildrop lock and the message snapshot after a login.
func (c *conn) open(log *slog.Logger) {
	md := c.md
	account := strings.ToLower(md.Account())
	if !c.srv.locks.tryLock(account) {
		log.Info("pop3 login refused: maildrop in use", "account", account)
		md.Close()
		c.md = nil
		c.reply("-ERR [IN-USE] maildrop is locked by another session")
		return
	}
	c.account = account
	var msgs []Message
	err := c.background(func(ctx context.Context) error {
		var err error
		msgs, err = md.Messages(ctx)
		return err
	})
	if err != nil {
		log.Error("pop3 open maildrop", "account", account, "err", err)
		c.md.Close()
		c.md = nil
		c.srv.locks.unlock(account)
		c.account = ""
		if c.ctx.Err() != nil {
			c.quit = true
			return
		}
		c.reply("-ERR [SYS/TEMP] cannot open maildrop, try again later")
		return
	}
	c.msgs = make([]msgState, len(msgs))
	var size int64
	for i, m := range msgs {
		c.msgs[i] = msgState{uid: m.UID, wireUID: wireUID(m.UID), size: max(m.Size, 0)}
		size += c.msgs[i].size
	}
	c.state = transaction
	c.log = c.log.With("account", account)
	log.Info("pop3 login", "account", account, "messages", len(msgs), "tls", c.tls != nil)
	c.reply("+OK maildrop has " + strconv.Itoa(len(msgs)) + " messages (" + strconv.FormatInt(size, 10) + " octets)")
}

// wireUID makes uid fit RFC 1939's unique-id syntax (1-70 octets of
// 0x21-0x7E), mapping anything else to a stable hash.
func wireUID(uid string) string {
	ok := len(uid) >= 1 && len(uid) <= 70
	for i := 0; ok && i < len(uid); i++ {
		ok = uid[i] >= 0x21 && uid[i] <= 0x7e
	}
	if ok {
		return uid
	}
	sum := sha256.Sum256([]byte(uid))
	return "h" + hex.EncodeToString(sum[:24])
}

func (c *conn) authCommand(args []string) {
	if !c.authAllowed() {
		c.bad(replyNeedTLS)
		return
	}
	if len(args) == 0 {
		// RFC 1734's mechanism list, still sent by some old clients.
		c.reply("+OK\r\n" + strings.Join(sasl.Mechanisms(true), "\r\n") + "\r\n.")
		return
	}
	if len(args) > 2 {
		c.bad("-ERR usage: AUTH mechanism [initial-response]")
		return
	}
	mech := strings.ToUpper(args[0])
	authFn := c.authenticator()
	s, err := sasl.NewServer(c.ctx, mech, true, func(_ context.Context, u, p string) error {
		// The exchange's context is the one of the backend call under
		// way, which ends if the client disconnects.
		return authFn(c.callCtx, u, p)
	})
	if err != nil {
		c.bad("-ERR unsupported SASL mechanism")
		return
	}
	var response []byte // nil: no initial response
	if len(args) == 2 {
		if args[1] == "=" {
			response = []byte{}
		} else if response, err = base64.StdEncoding.Strict().DecodeString(args[1]); err != nil {
			c.bad("-ERR invalid base64 in initial response")
			return
		}
	}
	for {
		var (
			challenge []byte
			done      bool
		)
		err := c.background(func(context.Context) error {
			var err error
			challenge, done, err = s.Next(response)
			return err
		})
		if err != nil || done {
			c.finishLogin(c.user, err)
			return
		}
		c.reply("+ " + base64.StdEncoding.EncodeToString(challenge))
		if c.bw.Flush() != nil {
			c.quit = true
			return
		}
		line, err := c.readLine(maxAuthLine)
		if err != nil {
			if c.lineError(err) {
				// The exchange is over; lineError has answered.
				return
			}
			c.quit = true
			return
		}
		if string(line) == "*" {
			c.reply("-ERR authentication cancelled")
			return
		}
		if response, err = base64.StdEncoding.Strict().DecodeString(string(line)); err != nil {
			c.bad("-ERR invalid base64 in AUTH response")
			return
		}
		if response == nil {
			response = []byte{}
		}
	}
}

func (c *conn) stls(args []string) {
	switch {
	case c.srv.tlsConfig == nil:
		c.bad("-ERR STLS not available")
		return
	case c.tls != nil:
		c.bad("-ERR command not permitted when TLS active")
		return
	case len(args) > 0:
		c.bad("-ERR this command takes no arguments")
		return
	}
	c.reply("+OK begin TLS negotiation")
	if c.bw.Flush() != nil {
		c.quit = true
		return
	}
	if c.br.Buffered() > 0 {
		// Plaintext sent after STLS would be taken as if it came over TLS
		// (the STARTTLS command injection attack): refuse the session.
		c.log.Warn("pop3 data pipelined after STLS, closing")
		c.quit = true
		c.nc().Close()
		return
	}
	raw := c.nc()
	tc := tls.Server(raw, c.srv.tlsConfig)
	c.ncMu.Lock()
	c.netConn = tc
	c.ncMu.Unlock()
	raw.SetDeadline(time.Time{})
	if !c.handshake(tc) {
		c.quit = true
		c.nc().Close()
		return
	}
}
