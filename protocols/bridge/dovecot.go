package bridge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	gosasl "github.com/emersion/go-sasl"

	"github.com/vmaild/vmaild/protocols/sasl"
	"github.com/vmaild/vmaild/userdb"
)

// Dovecot is the server side of Dovecot's authentication protocol (the
// "auth-client" socket), version 1: what Postfix uses with
// smtpd_sasl_type = dovecot and Exim with its dovecot authenticator. It
// offers PLAIN and LOGIN; every attempt goes through Answers.Logins,
// counted against the client address the MTA passes as rip=.
type Dovecot struct {
	Answers *Answers
	// FailTemp answers a temporary failure (directory down, no room to
	// verify) with FAIL and the temp flag, which Exim's dovecot
	// authenticator reads. Without it the connection is closed instead:
	// Postfix reads every FAIL as a wrong password (535 5.7.8), whatever
	// its flags, but a connection lost mid-exchange as a temporary
	// failure (454 4.7.0), and so does every other client.
	FailTemp bool

	conns atomic.Uint64 // connection unique ids (CUID)
}

// Name implements Protocol.
func (*Dovecot) Name() string { return "dovecot-auth" }

// The protocol's bounds. Dovecot expects lines to fit 16 KiB; a client
// has few exchanges in flight (Postfix and Exim have one).
const (
	dovecotMaxLine    = 16384
	dovecotMaxPending = 16
	dovecotMajor      = 1
)

// dovecotExchange is one AUTH waiting for the client's CONT.
type dovecotExchange struct {
	srv     gosasl.Server
	login   string // the username the client gave, once known
	account *userdb.Account
}

// Serve implements Protocol: the handshake, then AUTH and CONT lines.
func (d *Dovecot) Serve(ctx context.Context, c *Conn) error {
	cookie := make([]byte, 16)
	rand.Read(cookie)
	fmt.Fprintf(c.w, "VERSION\t%d\t2\n", dovecotMajor)
	for _, m := range sasl.Mechanisms(true) {
		fmt.Fprintf(c.w, "MECH\t%s\tplaintext\n", m)
	}
	fmt.Fprintf(c.w, "SPID\t%d\nCUID\t%d\nCOOKIE\t%s\nDONE\n", os.Getpid(), d.conns.Add(1), hex.EncodeToString(cookie))
	if err := c.w.Flush(); err != nil {
		return err
	}
	pending := map[uint64]*dovecotExchange{}
	versioned := false
	for {
		if err := c.Next(); err != nil {
			return err
		}
		line, err := readLine(c, dovecotMaxLine)
		if err != nil {
			return err
		}
		args := strings.Split(line, "\t")
		switch cmd := args[0]; {
		case cmd == "VERSION":
			if len(args) < 3 || args[1] != strconv.Itoa(dovecotMajor) {
				return hangUp("dovecot-auth: client speaks version %q, not %d", strings.Join(args[1:], "."), dovecotMajor)
			}
			versioned = true
		case !versioned:
			return hangUp("dovecot-auth: %q before VERSION", cmd)
		case cmd == "CPID":
			// The client's process id: Dovecot's auth-master uses it, we
			// have nothing to say about it.
		case cmd == "AUTH":
			if err := d.auth(ctx, c, pending, args[1:]); err != nil {
				return err
			}
		case cmd == "CONT":
			if err := d.cont(ctx, c, pending, args[1:]); err != nil {
				return err
			}
		default:
			return hangUp("dovecot-auth: unknown command %q", cmd)
		}
		if err := c.End(); err != nil {
			return err
		}
	}
}

// auth starts an exchange: AUTH id mech [params], resp= the initial
// response.
func (d *Dovecot) auth(ctx context.Context, c *Conn, pending map[uint64]*dovecotExchange, args []string) error {
	if len(args) < 2 {
		return hangUp("dovecot-auth: AUTH needs an id and a mechanism")
	}
	id, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil {
		return hangUp("dovecot-auth: AUTH id %q is not a number", args[0])
	}
	if _, dup := pending[id]; dup {
		return hangUp("dovecot-auth: AUTH id %d already in use", id)
	}
	var client netip.Addr
	var resp []byte
	haveResp := false
	for _, p := range args[2:] {
		name, value, _ := strings.Cut(p, "=")
		switch name {
		case "rip":
			if a, err := netip.ParseAddr(dovecotUnescape(value)); err == nil {
				client = a.Unmap()
			}
		case "resp":
			if resp, err = base64.StdEncoding.DecodeString(value); err != nil {
				return d.fail(c, id, "", "Invalid base64 data in initial response", false)
			}
			haveResp = true
		}
	}
	if len(pending) >= dovecotMaxPending {
		// A client's bug, not an outage: it hears no, not try later.
		return d.fail(c, id, "", "Too many authentications in progress", false)
	}
	ex := &dovecotExchange{}
	check := d.Answers.Authenticator(client, &ex.account)
	noted := func(ctx context.Context, username, password string) error {
		ex.login = username
		return check(ctx, username, password)
	}
	// The MTA decides whether its client may send a password in the clear
	// (smtpd_tls_auth_only); it passes "secured" when TLS is on.
	srv, err := sasl.NewServer(ctx, args[1], true, noted)
	if err != nil {
		return d.fail(c, id, "", "Unsupported authentication mechanism", false)
	}
	ex.srv = srv
	if !haveResp {
		resp = nil
	} else if resp == nil {
		resp = []byte{}
	}
	return d.step(c, pending, id, ex, resp)
}

// cont continues an exchange: CONT id base64.
func (d *Dovecot) cont(ctx context.Context, c *Conn, pending map[uint64]*dovecotExchange, args []string) error {
	if len(args) < 1 {
		return hangUp("dovecot-auth: CONT needs an id")
	}
	id, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil {
		return hangUp("dovecot-auth: CONT id %q is not a number", args[0])
	}
	ex, ok := pending[id]
	if !ok {
		return d.fail(c, id, "", "Unknown authentication request", false)
	}
	data := ""
	if len(args) > 1 {
		data = args[1]
	}
	resp, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		delete(pending, id)
		return d.fail(c, id, ex.login, "Invalid base64 data in continued response", false)
	}
	return d.step(c, pending, id, ex, resp)
}

// step feeds a response to the mechanism and answers CONT, OK or FAIL.
func (d *Dovecot) step(c *Conn, pending map[uint64]*dovecotExchange, id uint64, ex *dovecotExchange, resp []byte) error {
	challenge, done, err := ex.srv.Next(resp)
	switch {
	case err == nil && !done:
		pending[id] = ex
		_, werr := fmt.Fprintf(c.w, "CONT\t%d\t%s\n", id, base64.StdEncoding.EncodeToString(challenge))
		return werr
	case err == nil:
		delete(pending, id)
		_, werr := fmt.Fprintf(c.w, "OK\t%d\tuser=%s\n", id, dovecotEscape(ex.account.Address))
		return werr
	}
	delete(pending, id)
	switch {
	case Temporary(err):
		if !d.FailTemp {
			return fmt.Errorf("dovecot-auth: %s: closing for a temporary failure: %w", ex.login, err)
		}
		return d.fail(c, id, ex.login, "Temporary authentication failure, try again later", true)
	case errors.Is(err, sasl.ErrMalformed), errors.Is(err, gosasl.ErrUnexpectedClientResponse):
		return d.fail(c, id, ex.login, "Invalid authentication response", false)
	}
	return d.fail(c, id, ex.login, "", false)
}

// fail answers FAIL: temp tells the MTA to say "try later" (454 4.7.0)
// instead of "wrong password" (535 5.7.8).
func (d *Dovecot) fail(c *Conn, id uint64, login, reason string, temp bool) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "FAIL\t%d", id)
	if login != "" {
		b.WriteString("\tuser=" + dovecotEscape(login))
	}
	if temp {
		b.WriteString("\ttemp")
	}
	if reason != "" {
		b.WriteString("\treason=" + dovecotEscape(reason))
	}
	b.WriteByte('\n')
	_, err := c.w.Write(b.Bytes())
	return err
}

// dovecotEscape applies Dovecot's tab-escaping (\001 then a letter) to a
// value, so no TAB, LF or NUL of a user's input can forge a field.
func dovecotEscape(s string) string {
	if !strings.ContainsAny(s, "\x00\x01\t\r\n") {
		return s
	}
	return strings.NewReplacer("\x01", "\x011", "\x00", "\x010", "\t", "\x01t", "\r", "\x01r", "\n", "\x01n").Replace(s)
}

// dovecotUnescape reverses dovecotEscape.
func dovecotUnescape(s string) string {
	if !strings.Contains(s, "\x01") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != 1 || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case '0':
			b.WriteByte(0)
		case '1':
			b.WriteByte(1)
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
