package queue

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/vmaild/vmaild/userdb"
)

// reply is the outcome of one delivery attempt for a recipient: an SMTP
// reply from a remote server, or a local verdict (DNS, connection, local
// delivery) with Code 0.
type reply struct {
	OK     bool
	Perm   bool
	Code   int
	Status string // RFC 3463, e.g. "5.1.1"
	Text   string
	Host   string // remote MTA that answered
}

func (r reply) String() string {
	var b strings.Builder
	if r.Code != 0 {
		b.WriteString(strconv.Itoa(r.Code))
		b.WriteByte(' ')
	}
	if r.Status != "" && r.Code != 0 {
		b.WriteString(r.Status)
		b.WriteByte(' ')
	}
	b.WriteString(r.Text)
	return b.String()
}

// smtpReply turns an error from the go-smtp client into a reply. Errors
// that are not SMTP replies (I/O, timeouts) are temporary.
func smtpReply(err error, host, what string) reply {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		r := reply{Code: se.Code, Text: oneLine(se.Message), Host: host, Perm: se.Code >= 500}
		if se.EnhancedCode != (smtp.EnhancedCode{}) && se.EnhancedCode != smtp.NoEnhancedCode {
			r.Status = fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		} else if se.Code >= 500 {
			r.Status = "5.0.0"
		} else {
			r.Status = "4.0.0"
		}
		return r
	}
	return reply{Status: "4.4.2", Text: what + ": " + oneLine(err.Error()), Host: host}
}

// oneLine makes remote text safe for logs, state and DSN fields.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 800 {
		s = s[:800] + "..."
	}
	return s
}

// attempt is what one delivery to one destination domain produced.
type attempt struct {
	results map[string]reply
	relay   string // host that gave the final answer
	tls     string // "", "unverified", "verified"
	policy  string // the TLS policy that applied (hostPolicy.name)
}

// deliver attempts one transaction per host for the recipients of one
// domain, trying MX hosts in order until every recipient has an answer
// that another host would not change.
func (q *Queue) deliver(ctx context.Context, it *item, domain string, rcpts []string) attempt {
	switch {
	case q.cfg.LocalDomain != nil && q.cfg.LocalDomain(domain):
		return q.deliverLocal(ctx, it, rcpts)
	case q.cfg.Smarthost != nil:
		sh := q.cfg.Smarthost
		host, _, _ := net.SplitHostPort(sh.Addr)
		hp, fail := forSmarthost(sh, host, it.RequireTLS)
		if fail != nil {
			a := attempt{results: make(map[string]reply, len(rcpts)), relay: sh.Addr, policy: hp.name}
			for _, rc := range rcpts {
				a.results[rc] = *fail
			}
			return a
		}
		out := q.session(ctx, sh.Addr, host, hp, it, rcpts)
		a := attempt{results: out.final, relay: sh.Addr, tls: out.tls, policy: hp.name}
		for _, r := range out.retry {
			a.results[r] = out.sess
		}
		return a
	}
	return q.deliverMX(ctx, it, domain, rcpts)
}

func (q *Queue) deliverMX(ctx context.Context, it *item, domain string, rcpts []string) attempt {
	a := attempt{results: make(map[string]reply, len(rcpts))}
	failAll := func(r reply) attempt {
		for _, rc := range rcpts {
			a.results[rc] = r
		}
		return a
	}
	hosts, implicit, secure, fail := q.dns.lookupMX(ctx, domain, rand.IntN)
	if fail != nil {
		return failAll(*fail)
	}
	dp := q.policy.forDomain(ctx, domain, secure, it.RequireTLS)
	msg := msgTLS{requireTLS: it.RequireTLS, tlsRequiredNo: sync.OnceValue(func() bool { return q.tlsRequiredNo(it) })}
	if dp.stsErr != nil {
		q.log.Warn("queue: MTA-STS policy unavailable", "queue_id", it.ID, "domain", domain, "err", dp.stsErr)
	}
	remaining := rcpts
	last := reply{Status: "4.4.1", Text: "no mail host for " + domain + " could be reached"}
	for _, h := range hosts {
		addrs, addrSecure, fail := q.dns.lookupAddrs(ctx, h.Name)
		if fail != nil {
			if implicit {
				// The domain itself is the only host: no MX and no
				// address is "no such mail domain".
				for _, rc := range remaining {
					a.results[rc] = *fail
				}
				return a
			}
			last = *fail
			// Another MX, or a later retry, may work.
			last.Perm, last.Status = false, "4.4.4"
			continue
		}
		hp, pfail := q.policy.forHost(ctx, dp, h.Name, addrSecure, msg)
		a.policy = hp.name
		if pfail != nil {
			// The policy forbids this host; another MX may do.
			last = *pfail
			q.log.Warn("queue: TLS policy rules out host", "queue_id", it.ID, "domain", domain, "host", h.Name, "tls_policy", hp.name, "reason", pfail.Text)
			continue
		}
		if hp.reportWhy != "" {
			q.log.Warn("queue: TLS policy report", "queue_id", it.ID, "domain", domain, "host", h.Name, "tls_policy", hp.name, "failure", hp.reportWhy, "action", "delivering without enforcing the policy")
		}
		for _, ip := range addrs {
			if ctx.Err() != nil {
				break
			}
			addr := net.JoinHostPort(ip.String(), strconv.Itoa(q.cfg.Port))
			out := q.session(ctx, addr, h.Name, hp, it, remaining)
			if hp.report && hp.reportWhy == "" && out.tls != "verified" {
				why := "no verified TLS"
				if out.verifyErr != nil {
					why = "certificate not verified: " + oneLine(out.verifyErr.Error())
				}
				q.log.Warn("queue: TLS policy report", "queue_id", it.ID, "domain", domain, "host", h.Name, "tls_policy", hp.name, "failure", why, "tls", out.tls, "action", "delivered without enforcing the policy")
			}
			for rc, r := range out.final {
				a.results[rc] = r
			}
			a.relay, a.tls = h.Name, out.tls
			remaining = out.retry
			if len(remaining) == 0 {
				return a
			}
			last = out.sess
			q.log.Debug("queue: host failed, trying next", "queue_id", it.ID, "domain", domain, "host", h.Name, "addr", addr, "reply", out.sess.String())
		}
	}
	for _, rc := range remaining {
		a.results[rc] = last
	}
	return a
}

func (q *Queue) deliverLocal(ctx context.Context, it *item, rcpts []string) attempt {
	a := attempt{results: make(map[string]reply, len(rcpts)), relay: "local"}
	r := reply{OK: true, Status: "2.0.0", Text: "delivered locally", Host: "local"}
	msg, err := q.readMessage(it)
	if err == nil {
		err = q.cfg.Local(context.WithValue(ctx, itemIDKey{}, it.ID), it.From, q.recipients(it, rcpts), msg)
	}
	var each RecipientErrors
	if errors.As(err, &each) {
		for _, rc := range rcpts {
			a.results[rc] = r
			if e, ok := each[rc]; !ok || e != nil {
				if !ok {
					e = err // not answered: retried, never taken as delivered
				}
				a.results[rc] = localReply(e)
			}
		}
		return a
	}
	if err != nil {
		r = localReply(err)
	}
	for _, rc := range rcpts {
		a.results[rc] = r
	}
	return a
}

// recipients are the item's recipients named by addrs, in that order, with
// their marks.
func (q *Queue) recipients(it *item, addrs []string) []Recipient {
	want := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		want[a] = true
	}
	byAddr := make(map[string]Recipient, len(addrs))
	q.mu.Lock()
	for _, r := range it.rcpts {
		if want[r.Addr] {
			byAddr[r.Addr] = r
		}
	}
	q.mu.Unlock()
	out := make([]Recipient, len(addrs))
	for i, a := range addrs {
		r, ok := byAddr[a]
		if !ok {
			r = Recipient{Addr: a, State: Pending}
		}
		out[i] = r
	}
	return out
}

// RecipientErrors is what Config.Local returns when its recipients fared
// differently: an entry per recipient, nil for delivered. Each is then
// retried or bounced on its own, so none is delivered twice.
type RecipientErrors map[string]error

func (e RecipientErrors) Error() string {
	n := 0
	for _, err := range e {
		if err != nil {
			n++
		}
	}
	return fmt.Sprintf("%d of %d local recipients failed", n, len(e))
}

// localReply classifies an error from Config.Local. Unknown errors are
// temporary: retrying until MaxAge is better than bouncing on a glitch.
func localReply(err error) reply {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return smtpReply(se, "local", "")
	}
	r := reply{Status: "4.2.0", Text: oneLine(err.Error()), Host: "local"}
	var t interface{ Temporary() bool }
	if errors.As(err, &t) && !t.Temporary() ||
		errors.Is(err, userdb.ErrNotFound) || errors.Is(err, userdb.ErrDisabled) || errors.Is(err, userdb.ErrInvalid) {
		r.Perm, r.Status = true, "5.1.1"
	}
	return r
}

func (q *Queue) readMessage(it *item) ([]byte, error) {
	f, sr, err := q.spool.open(it.ID, it.Size)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, it.Size)
	if _, err := io.ReadFull(sr, buf); err != nil {
		return nil, fmt.Errorf("queue: read %s: %w", it.ID, err)
	}
	return buf, nil
}

type tlsMode int

const (
	tlsNone          tlsMode = iota
	tlsOpportunistic         // STARTTLS if offered, plaintext if it fails
	tlsRequired              // STARTTLS or fail; hostPolicy.verify says whether the certificate must be valid
	tlsImplicit              // TLS from the first byte (the smarthost on 465)
)

// sessionResult: final holds recipients with an answer another host would
// not change (delivered, 5xx, a 4xx to that recipient alone); retry holds
// the recipients the next host should get, all failed with sess.
type sessionResult struct {
	final map[string]reply
	retry []string
	sess  reply
	tls   string
	// verifyErr is why the certificate was not verified, when TLS was
	// up but unverified (for the testing-mode report).
	verifyErr error
}

var (
	errTLSHandshake = errors.New("TLS handshake failed")
	errNoSTARTTLS   = errors.New("server does not offer STARTTLS, which the TLS policy requires")
)

// session runs one SMTP transaction with one address. With opportunistic
// TLS a failed handshake is retried once in plaintext, as a receiver with
// a broken TLS stack still deserves its mail.
func (q *Queue) session(ctx context.Context, addr, host string, hp hostPolicy, it *item, rcpts []string) sessionResult {
	res := q.transaction(ctx, addr, host, hp, it, rcpts)
	if hp.mode == tlsOpportunistic && errors.Is(res.err, errTLSHandshake) && ctx.Err() == nil {
		q.log.Info("queue: STARTTLS failed, retrying without TLS", "queue_id", it.ID, "host", host, "addr", addr, "tls_policy", hp.name, "err", res.err)
		plain := hp
		plain.mode = tlsNone
		res = q.transaction(ctx, addr, host, plain, it, rcpts)
		if res.verifyErr == nil {
			res.verifyErr = errTLSHandshake
		}
	}
	return res.sessionResult
}

type txResult struct {
	sessionResult
	err error
}

func (q *Queue) transaction(ctx context.Context, addr, host string, hp hostPolicy, it *item, rcpts []string) (res txResult) {
	res.final = make(map[string]reply, len(rcpts))
	fail := func(r reply, err error) txResult {
		res.retry, res.sess, res.err = rcpts, r, err
		return res
	}
	dctx, cancel := context.WithTimeout(ctx, q.cfg.ConnectTimeout)
	conn, err := q.cfg.Dial(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return fail(reply{Status: "4.4.1", Text: "connect to " + host + "[" + addr + "]: " + oneLine(err.Error()), Host: host}, err)
	}
	defer conn.Close()
	// go-smtp has no context support: closing the connection is what
	// interrupts a blocked read when the queue shuts down.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, check, err := q.hello(ctx, conn, host, hp)
	res.tls, res.verifyErr = check.state, check.err
	if err != nil {
		stage := "greeting"
		tlsFailed := errors.Is(err, errTLSHandshake) || errors.Is(err, errNoSTARTTLS)
		if tlsFailed {
			// The relay answered; what failed is the TLS the policy
			// asks for (certificate, protocol, STARTTLS missing).
			stage = "TLS"
		}
		r := smtpReply(err, host, stage)
		// A server refusing to talk (5xx greeting or EHLO) is a host
		// problem, not a verdict on the recipients: try the next one.
		r.Perm = false
		switch {
		case tlsFailed && r.Code == 0:
			r.Status = "4.7.5" // cryptographic failure (RFC 3463)
		case r.Code >= 500:
			r.Status = "4.4.2"
		}
		return fail(r, err)
	}
	defer c.Close()

	if it.RequireTLS {
		// RFC 8689 section 4.1: the next hop must promise to keep the
		// demand; one that cannot is not an MX for this message.
		if ok, _ := c.Extension("REQUIRETLS"); !ok || check.state != "verified" || !hp.authenticated {
			c.Quit()
			r := reply{Perm: true, Status: "5.7.30", Host: host, Text: "REQUIRETLS: " + host + " does not support REQUIRETLS (TLS policy " + hp.name + ")"}
			return fail(r, errors.New(r.Text))
		}
	}

	if sh := q.cfg.Smarthost; sh != nil && sh.Username != "" && hp.mode != tlsNone {
		if err := c.Auth(sasl.NewPlainClient("", sh.Username, sh.Password)); err != nil {
			// A refused login is our configuration, not the sender's
			// fault: keep the mail and retry.
			r := smtpReply(err, host, "AUTH")
			r.Perm = false
			return fail(r, err)
		}
	}

	opts := &smtp.MailOptions{Size: it.Size, RequireTLS: it.RequireTLS}
	if !isASCII(it.From) || !allASCII(rcpts) {
		opts.UTF8 = true
	}
	if err := c.Mail(it.From, opts); err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) && opts.UTF8 && strings.Contains(err.Error(), "SMTPUTF8") {
			r := reply{Perm: true, Status: "5.6.7", Text: "remote server does not support SMTPUTF8", Host: host}
			for _, rc := range rcpts {
				res.final[rc] = r
			}
			return res
		}
		r := smtpReply(err, host, "MAIL FROM")
		if r.Perm {
			for _, rc := range rcpts {
				res.final[rc] = r
			}
			return res
		}
		return fail(r, err)
	}
	var accepted []string
	for i, rc := range rcpts {
		if err := c.Rcpt(rc, nil); err != nil {
			r := smtpReply(err, host, "RCPT TO")
			if r.Code == 0 {
				// Connection lost: everyone not yet answered goes on.
				res.retry = append(accepted, rcpts[i:]...)
				res.sess, res.err = r, err
				return res
			}
			res.final[rc] = r
			continue
		}
		accepted = append(accepted, rc)
	}
	if len(accepted) == 0 {
		c.Quit()
		return res
	}
	w, err := c.Data()
	if err == nil {
		f, sr, oerr := q.spool.open(it.ID, it.Size)
		if oerr != nil {
			c.Close() // abandon the transaction: no final dot
			res.retry, res.sess, res.err = accepted, reply{Status: "4.3.0", Text: oneLine(oerr.Error())}, oerr
			return res
		}
		_, err = io.Copy(w, sr)
		f.Close()
		if err == nil {
			var resp *smtp.DataResponse
			resp, err = w.CloseWithResponse()
			if err == nil {
				ok := reply{OK: true, Code: 250, Status: "2.0.0", Text: oneLine(resp.StatusText), Host: host}
				for _, rc := range accepted {
					res.final[rc] = ok
				}
				c.Quit()
				return res
			}
		}
	}
	r := smtpReply(err, host, "DATA")
	if r.Perm {
		for _, rc := range accepted {
			res.final[rc] = r
		}
		return res
	}
	res.retry, res.sess, res.err = accepted, r, err
	return res
}

// tlsCheck is what a connection's TLS came to: state "" (none),
// "unverified" or "verified", and why it is not verified.
type tlsCheck struct {
	state string
	err   error
}

// hello reads the greeting and says EHLO, upgrading to TLS first when the
// policy asks for it. go-smtp cannot start TLS on a client it did not
// dial itself after a custom EHLO, so the plaintext part of the dialogue
// is ours; go-smtp takes over behind a replayed greeting.
func (q *Queue) hello(ctx context.Context, conn net.Conn, host string, hp hostPolicy) (*smtp.Client, tlsCheck, error) {
	var check tlsCheck
	// rest is where reading continues after the replayed prefix.
	newClient := func(c net.Conn, prefix string, rest io.Reader) (*smtp.Client, error) {
		if prefix != "" {
			c = &replayConn{Conn: c, r: io.MultiReader(strings.NewReader(prefix), rest)}
		}
		cl := smtp.NewClient(c)
		cl.CommandTimeout = q.cfg.CommandTimeout
		cl.SubmissionTimeout = q.cfg.DataTimeout
		if err := cl.Hello(q.cfg.Hostname); err != nil {
			cl.Close()
			return nil, err
		}
		return cl, nil
	}
	switch hp.mode {
	case tlsNone:
		c, err := newClient(conn, "", nil)
		return c, check, err
	case tlsImplicit:
		tc := tls.Client(conn, q.tlsConfig(host, hp, &check))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, tlsCheck{err: check.err}, fmt.Errorf("%w: %w", errTLSHandshake, err)
		}
		c, err := newClient(tc, "", nil)
		return c, check, err
	}

	deadline := func() { conn.SetDeadline(time.Now().Add(q.cfg.CommandTimeout)) }
	deadline()
	tp := textproto.NewReader(bufio.NewReader(conn))
	send := func(line string) error {
		deadline()
		_, err := io.WriteString(conn, line+"\r\n")
		return err
	}
	read := func(expect int) (int, string, error) {
		code, msg, err := tp.ReadResponse(expect)
		var pe *textproto.Error
		if errors.As(err, &pe) {
			return code, msg, &smtp.SMTPError{Code: pe.Code, Message: pe.Msg}
		}
		return code, msg, err
	}
	if _, _, err := read(220); err != nil {
		return nil, check, err
	}
	greeting := "220 " + host + " ESMTP\r\n"
	plain := func() (*smtp.Client, tlsCheck, error) {
		conn.SetDeadline(time.Time{})
		c, err := newClient(conn, greeting, tp.R)
		return c, check, err
	}
	if err := send("EHLO " + q.cfg.Hostname); err != nil {
		return nil, check, err
	}
	_, msg, err := read(250)
	if err != nil {
		var se *smtp.SMTPError
		if hp.mode == tlsOpportunistic && errors.As(err, &se) && (se.Code == 500 || se.Code == 502) {
			return plain() // an old server: go-smtp falls back to HELO
		}
		return nil, check, err
	}
	starttls := false
	for _, l := range strings.Split(msg, "\n")[1:] {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], "STARTTLS") {
			starttls = true
		}
	}
	if !starttls {
		if hp.mode == tlsRequired {
			return nil, check, errNoSTARTTLS
		}
		return plain()
	}
	if err := send("STARTTLS"); err != nil {
		return nil, check, err
	}
	if _, _, err := read(220); err != nil {
		if hp.mode == tlsRequired {
			return nil, check, err
		}
		return plain()
	}
	if tp.R.Buffered() > 0 {
		// Bytes after the 220 would be read as if they came over TLS:
		// the STARTTLS command injection attack (CVE-2011-0411 class).
		return nil, check, errors.New("server sent data after STARTTLS reply")
	}
	conn.SetDeadline(time.Time{})
	tc := tls.Client(conn, q.tlsConfig(host, hp, &check))
	hctx, cancel := context.WithTimeout(ctx, q.cfg.CommandTimeout)
	err = tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		return nil, tlsCheck{err: check.err}, fmt.Errorf("%w: %w", errTLSHandshake, err)
	}
	// After STARTTLS the server sends no greeting; go-smtp expects one.
	c, err := newClient(tc, greeting, tc)
	return c, check, err
}

// tlsConfig derives the configuration for one connection. The
// certificate check is always ours (VerifyConnection): a policy that
// verifies (DANE, MTA-STS enforce, verify, the smarthost) fails the
// handshake on a bad certificate; the others (may, encrypt, MTA-STS
// testing) accept any, as an unverified channel beats plaintext, and the
// check only tells the log whether it was valid.
func (q *Queue) tlsConfig(host string, hp hostPolicy, check *tlsCheck) *tls.Config {
	var cfg *tls.Config
	if q.cfg.TLSConfig != nil {
		cfg = q.cfg.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	roots, skip := cfg.RootCAs, false
	if sh := q.cfg.Smarthost; sh != nil {
		skip = sh.InsecureSkipVerify
		if sh.RootCAs != nil {
			roots = sh.RootCAs
		}
	}
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		var err error
		switch {
		case len(cs.PeerCertificates) == 0:
			err = errors.New("server sent no certificate")
		case hp.tlsa != nil:
			err = daneVerify(cs.PeerCertificates, hp.tlsa, host)
		default:
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: cs.ServerName, Roots: roots, Intermediates: inter})
		}
		check.state, check.err = "verified", nil
		if err != nil || skip {
			// The smarthost's certificate taken unchecked, as its
			// admin chose, is not called verified either.
			check.state, check.err = "unverified", err
		}
		if err != nil && hp.verify && !hp.report && !skip {
			return fmt.Errorf("TLS policy %s: %w", hp.name, err)
		}
		return nil
	}
	return cfg
}

// replayConn puts bytes back in front of a connection's reader.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(ss []string) bool {
	for _, s := range ss {
		if !isASCII(s) {
			return false
		}
	}
	return true
}
