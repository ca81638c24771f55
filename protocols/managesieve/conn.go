package managesieve

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/protocols/sasl"
	"github.com/vmaild/vmaild/userdb"
)

// conn is one client connection and its session.
type conn struct {
	srv *Server
	gc  *gate.Conn
	ip  netip.Addr
	log *slog.Logger
	ctx context.Context

	ncMu    sync.Mutex
	netConn net.Conn // a *tls.Conn after STARTTLS
	br      *bufio.Reader
	bw      *bufio.Writer
	rd      *reader

	tls     *tls.ConnectionState
	scripts Scripts // non-nil once authenticated
	badCmds int
	quit    bool
}

func newConn(s *Server, nc net.Conn) *conn {
	gc := gate.ConnOf(nc)
	c := &conn{srv: s, gc: gc, ip: gc.Client(), netConn: nc, ctx: gc.Context()}
	c.log = s.logger().With("proto", "managesieve", "remote", nc.RemoteAddr().String())
	c.br = bufio.NewReaderSize(connReader{c}, 4096)
	c.bw = bufio.NewWriterSize(connWriter{c}, 16*1024)
	c.rd = &reader{br: c.br, maxLiteral: s.maxScriptSize()}
	return c
}

func (c *conn) nc() net.Conn {
	c.ncMu.Lock()
	defer c.ncMu.Unlock()
	return c.netConn
}

// connReader and connWriter follow the net.Conn across STARTTLS.
type connReader struct{ c *conn }

func (r connReader) Read(p []byte) (int, error) { return r.c.nc().Read(p) }

type connWriter struct{ c *conn }

func (w connWriter) Write(p []byte) (int, error) {
	nc := w.c.nc()
	nc.SetWriteDeadline(time.Now().Add(w.c.srv.writeTimeout()))
	return nc.Write(p)
}

func (c *conn) line(s string) {
	c.bw.WriteString(s)
	c.bw.WriteString("\r\n")
}

func (c *conn) ok(text string) {
	if text == "" {
		c.line("OK")
		return
	}
	c.line("OK " + quote(text))
}

// no answers NO with an optional response code.
func (c *conn) no(code, text string) {
	if code != "" {
		c.line("NO (" + code + ") " + quote(text))
		return
	}
	c.line("NO " + quote(text))
}

// bad answers a command the client should not have sent, and ends the
// session after too many.
func (c *conn) bad(code, text string) {
	c.badCmds++
	if c.badCmds >= c.srv.maxBadCommands() {
		c.log.Info("managesieve too many bad commands", "last", text)
		c.line("BYE " + quote("too many bad commands"))
		c.quit = true
		return
	}
	c.no(code, text)
}

func (c *conn) authAllowed() bool { return c.tls != nil || c.srv.AllowInsecureAuth }

func (c *conn) close() {
	if c.scripts != nil {
		if err := c.scripts.Close(); err != nil {
			c.log.Warn("managesieve close", "err", err)
		}
		c.scripts = nil
	}
	c.nc().Close()
}

func (c *conn) serve() {
	defer c.close()
	c.log.Debug("managesieve connect")
	c.capability()
	for !c.quit {
		if c.br.Buffered() == 0 && c.bw.Flush() != nil {
			return
		}
		c.gc.Idle()
		c.nc().SetReadDeadline(time.Now().Add(c.srv.idleTimeout()))
		name, args, err := c.rd.command()
		if err != nil {
			if !c.readError(err) {
				break
			}
			continue
		}
		if !c.gc.Busy() {
			c.line("BYE (TRYLATER) " + quote(gate.Shutdown.Text()))
			break
		}
		c.command(name, args)
	}
	c.bw.Flush()
}

// readError answers a command that could not be read, and reports whether
// the session goes on.
func (c *conn) readError(err error) bool {
	var se *syntaxError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		if !se.atEOL {
			if err := c.rd.skipLine(); err != nil {
				return c.readError(err)
			}
		}
		if se.tooBig {
			c.bad("QUOTA/MAXSIZE", se.msg)
		} else {
			c.bad("", se.msg)
		}
		return !c.quit
	case errors.Is(err, errFatal):
		c.log.Info("managesieve protocol error", "err", err)
		c.line("BYE " + quote(err.Error()))
	case errors.As(err, &ne) && ne.Timeout():
		switch r := c.gc.Expired(); r {
		case "":
			c.log.Debug("managesieve idle timeout")
			c.line("BYE " + quote("idle timeout"))
		case gate.Shutdown:
			c.line("BYE (TRYLATER) " + quote(r.Text()))
		default:
			c.line("BYE " + quote(r.Text()))
		}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
	default:
		c.log.Debug("managesieve read", "err", err)
	}
	return false
}

// capability sends the capability response (RFC 5804 section 1.7).
func (c *conn) capability() {
	impl := c.srv.Implementation
	if impl == "" {
		impl = "vmaild"
	}
	c.line(`"IMPLEMENTATION" ` + quote(impl))
	c.line(`"SASL" ` + quote(strings.Join(sasl.Mechanisms(c.authAllowed()), " ")))
	c.line(`"SIEVE" ` + quote(strings.Join(c.srv.Extensions, " ")))
	if c.srv.tlsConfig != nil && c.tls == nil {
		c.line(`"STARTTLS"`)
	}
	if c.srv.MaxRedirects > 0 {
		c.line(`"MAXREDIRECTS" ` + quote(strconv.Itoa(c.srv.MaxRedirects)))
	}
	if c.scripts != nil {
		c.line(`"OWNER" ` + quote(c.scripts.Account()))
	}
	c.line(`"UNAUTHENTICATE"`)
	c.line(`"VERSION" "1.0"`)
	c.ok("")
}

// strs checks that args are n strings.
func (c *conn) strs(args []arg, n int, usage string) ([]string, bool) {
	if len(args) != n {
		c.bad("", "usage: "+usage)
		return nil, false
	}
	out := make([]string, n)
	for i, a := range args {
		if a.kind != argString {
			c.bad("", "usage: "+usage)
			return nil, false
		}
		out[i] = a.s
	}
	return out, true
}

func (c *conn) command(name string, args []arg) {
	switch name {
	case "CAPABILITY":
		if _, ok := c.strs(args, 0, "CAPABILITY"); ok {
			c.capability()
		}
		return
	case "LOGOUT":
		c.ok("Logout completed")
		c.quit = true
		return
	case "NOOP":
		switch {
		case len(args) == 0:
			c.ok("Done")
		case len(args) == 1 && args[0].kind == argString:
			c.line("OK (TAG " + quote(args[0].s) + `) "Done"`)
		default:
			c.bad("", "usage: NOOP [tag]")
		}
		return
	}
	if c.scripts == nil {
		switch name {
		case "AUTHENTICATE":
			c.authenticate(args)
		case "STARTTLS":
			c.startTLS(args)
		case "HAVESPACE", "PUTSCRIPT", "LISTSCRIPTS", "SETACTIVE", "GETSCRIPT", "DELETESCRIPT", "RENAMESCRIPT", "CHECKSCRIPT", "UNAUTHENTICATE":
			c.bad("", "authenticate first")
		default:
			c.bad("", "unknown command")
		}
		return
	}
	switch name {
	case "AUTHENTICATE":
		c.bad("", "already authenticated")
	case "STARTTLS":
		c.bad("", "STARTTLS is only valid before login")
	case "UNAUTHENTICATE":
		if _, ok := c.strs(args, 0, "UNAUTHENTICATE"); ok {
			c.scripts.Close()
			c.scripts = nil
			c.log.Info("managesieve unauthenticate")
			c.ok("")
		}
	default:
		c.scriptCommand(name, args)
	}
}

func (c *conn) startTLS(args []arg) {
	switch {
	case c.srv.tlsConfig == nil:
		c.bad("", "STARTTLS not available")
		return
	case c.tls != nil:
		c.bad("", "TLS already active")
		return
	case len(args) > 0:
		c.bad("", "usage: STARTTLS")
		return
	}
	c.ok("Begin TLS negotiation now")
	if c.bw.Flush() != nil {
		c.quit = true
		return
	}
	if c.br.Buffered() > 0 {
		// Plaintext pipelined after STARTTLS would be taken as if it came
		// over TLS (command injection): end the session.
		c.log.Warn("managesieve data pipelined after STARTTLS, closing")
		c.quit = true
		return
	}
	raw := c.nc()
	tc := tls.Server(raw, c.srv.tlsConfig)
	c.ncMu.Lock()
	c.netConn = tc
	c.ncMu.Unlock()
	raw.SetDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.handshakeTimeout())
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.log.Debug("managesieve TLS handshake", "err", err)
		c.quit = true
		return
	}
	cs := tc.ConnectionState()
	c.tls = &cs
	// RFC 5804 section 2.2: the capabilities again, now over TLS.
	c.capability()
}

// authenticate runs AUTHENTICATE mechanism [initial-response].
func (c *conn) authenticate(args []arg) {
	if len(args) < 1 || len(args) > 2 || args[0].kind != argString || len(args) == 2 && args[1].kind != argString {
		c.bad("", `usage: AUTHENTICATE "mechanism" ["initial response"]`)
		return
	}
	if !c.authAllowed() {
		c.bad("ENCRYPT-NEEDED", "plaintext authentication is not allowed without TLS: STARTTLS first")
		return
	}
	var user string
	check := func(ctx context.Context, username, password string) error {
		user = username
		sc, err := c.srv.Backend.Login(ctx, c.connInfo(), username, password)
		if err == nil {
			c.scripts = sc
		}
		return err
	}
	guarded := sasl.Authenticator(check).Guarded(c.srv.Logins, c.ip)
	s, err := sasl.NewServer(c.ctx, strings.ToUpper(args[0].s), true, guarded)
	if err != nil {
		c.bad("", "unsupported SASL mechanism")
		return
	}
	var response []byte // nil: no initial response
	if len(args) == 2 {
		if response, err = base64.StdEncoding.Strict().DecodeString(args[1].s); err != nil {
			c.bad("", "invalid base64 in the initial response")
			return
		}
		if response == nil {
			response = []byte{}
		}
	}
	for {
		challenge, done, err := s.Next(response)
		if err != nil || done {
			c.finishLogin(user, err)
			return
		}
		c.line(quote(base64.StdEncoding.EncodeToString(challenge)))
		if c.bw.Flush() != nil {
			c.quit = true
			return
		}
		c.nc().SetReadDeadline(time.Now().Add(c.srv.idleTimeout()))
		c.rd.used, c.rd.litTotal = 0, 0
		resp, err := c.rd.args()
		if err != nil {
			// readError answers; the exchange is over either way.
			if !c.readError(err) {
				c.quit = true
			}
			return
		}
		if len(resp) != 1 || resp[0].kind != argString {
			c.bad("", "a SASL response is one string")
			return
		}
		if resp[0].s == "*" {
			c.no("", "authentication cancelled")
			return
		}
		if response, err = base64.StdEncoding.Strict().DecodeString(resp[0].s); err != nil {
			c.bad("", "invalid base64 in the SASL response")
			return
		}
		if response == nil {
			response = []byte{}
		}
	}
}

func (c *conn) finishLogin(user string, err error) {
	log := c.log.With("user", user)
	switch {
	case err == nil && c.scripts != nil:
		c.gc.Authenticated()
		c.log = c.log.With("account", c.scripts.Account())
		log.Info("managesieve login", "account", c.scripts.Account(), "tls", c.tls != nil)
		c.ok("Logged in")
		return
	case c.ctx.Err() != nil:
		c.quit = true
	case errors.Is(err, login.ErrBusy):
		log.Warn("managesieve login refused: too many logins being verified")
		c.no("TRYLATER", "too many logins at once, try again later")
	case userdb.Temporary(err):
		log.Warn("managesieve login: directory unavailable", "err", err)
		c.no("TRYLATER", "user directory unavailable, try again later")
	case errors.Is(err, sasl.ErrMalformed):
		log.Info("managesieve login failed", "err", err)
		c.bad("", err.Error())
	default:
		log.Info("managesieve login failed", "err", err)
		c.bad("", errAuthentication.Error())
	}
	if c.scripts != nil {
		c.scripts.Close()
		c.scripts = nil
	}
}

func (c *conn) connInfo() ConnInfo {
	nc := c.nc()
	return ConnInfo{RemoteAddr: nc.RemoteAddr(), LocalAddr: nc.LocalAddr(), IP: c.ip, TLS: c.tls}
}
