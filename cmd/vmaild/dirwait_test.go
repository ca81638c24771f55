package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/loadburst"
	"github.com/vmaild/vmaild/internal/testsrv"
	"github.com/vmaild/vmaild/internal/testusers"
)

// The directory timeout the daemon runs with in these tests, and the bound
// every answer must keep with the directory failing: the timeout plus one
// second.
const (
	dirTimeout = 2 * time.Second
	dirBound   = dirTimeout + time.Second
	dirBurst   = 100
)

// TestServeDirectoryHung freezes slapd (SIGSTOP) under `vmaild serve`
// with LDAP accounts, then sends 100 concurrent IMAP logins and 100
// concurrent RCPTs of distinct, uncached users, each client from its own
// loopback address: every login gets NO [UNAVAILABLE] and every RCPT
// 451 4.3.0 within ldap.timeout + 1 s. After SIGCONT the same users log in.
func TestServeDirectoryHung(t *testing.T) {
	sl := testsrv.StartSlapd(t)
	users := testusers.Burst(dirBurst + 1)
	sl.Load(t, testusers.LDIF(t, users))
	d := newDaemon(t, fmt.Sprintf(`userdb:
  accounts: ldap
sql:
  timeout: %v
ldap:
  urls: [%q]
  bind_dn: %q
  bind_password: %q
  base_dn: %q
  timeout: %v
`, dirTimeout, sl.URL, sl.AdminDN, sl.AdminPassword, sl.BaseDN, dirTimeout))
	d.start()
	d.cli("", "domain", "add", "example.com")
	warm, cold := users[0], users[1:]
	if reply, err := imapLogin(d.addr("imap"), 0, warm); err != nil || !strings.HasPrefix(reply, "b OK") {
		t.Fatalf("login before the outage: %q, %v", reply, err)
	}

	resume := loadburst.Outage(t, sl.Pause, sl.Resume)

	// Connections and TLS first, so that only the directory's part is
	// timed; then every command goes out at the same moment.
	logins := make([]*lineConn, len(cold))
	rcpts := make([]*lineConn, len(cold))
	setup := make([]error, len(cold))
	forEach(len(cold), func(i int) {
		var err1, err2 error
		logins[i], err1 = imapStartTLS(d.addr("imap"), i+1)
		rcpts[i], err2 = smtpMailFrom(d.addr("smtp"), i+1)
		setup[i] = errors.Join(err1, err2)
	})
	for i, err := range setup {
		if err != nil {
			t.Fatalf("client %d: %v", i+1, err)
		}
	}
	defer func() {
		for i := range cold {
			logins[i].Close()
			rcpts[i].Close()
		}
	}()
	check := func(what string, conns []*lineConn, command func(i int) string, tag, want string, bound time.Duration) {
		t.Helper()
		res := loadburst.Run(cold, func(_ context.Context, i int) error {
			r, err := conns[i].command(command(i), tag)
			if err != nil || !strings.HasPrefix(r, want) {
				return fmt.Errorf("%q, %v; want %s…", r, err, want)
			}
			return nil
		})
		slowest := loadburst.Check(t, what, res, bound, loadburst.NoError)
		t.Logf("%d concurrent %ss with slapd frozen: slowest answer %v", len(conns), what, slowest.Round(time.Millisecond))
	}
	check("login", logins, func(i int) string { return loginCommand(cold[i]) }, "b ", "b NO [UNAVAILABLE]", dirBound)
	// A RCPT makes several directory calls (domain, aliases, account,
	// quota) under one deadline, so it has the logins' bound.
	check("RCPT", rcpts, func(i int) string { return "RCPT TO:<" + cold[i] + ">" }, "", "451 4.3.0", dirBound)

	resume()
	forEach(len(cold), func(i int) {
		if reply, err := imapLogin(d.addr("imap"), i+1, cold[i]); err != nil || !strings.HasPrefix(reply, "b OK") {
			t.Errorf("login %s after SIGCONT: %q, %v", cold[i], reply, err)
		}
	})
}

// forEach runs f(0..n-1) concurrently and waits for all.
func forEach(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i)
		}()
	}
	wg.Wait()
}

// lineConn is a client speaking a line protocol (IMAP, SMTP) by hand.
type lineConn struct {
	net.Conn
	r *bufio.Reader
}

// dialFrom connects to addr from 127.1.0.0 + 2 + n: each client its own
// address, so per-address connection limits do not mix into what is
// measured.
func dialFrom(addr string, n int) (*lineConn, error) {
	local := &net.TCPAddr{IP: net.IPv4(127, 1, byte((n+2)>>8), byte(n+2))}
	c, err := (&net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}).Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s from %s: %w", addr, local.IP, err)
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	return &lineConn{Conn: c, r: bufio.NewReader(c)}, nil
}

// command sends cmd and returns the final reply line.
func (c *lineConn) command(cmd, tag string) (string, error) {
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", fmt.Errorf("write %q: %w", cmd, err)
	}
	return c.reply(tag)
}

// reply reads up to the final reply line, without its CRLF: the first
// starting with tag (IMAP), or with tag "" the first SMTP line that is not
// a continuation ("250-").
func (c *lineConn) reply(tag string) (string, error) {
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("read: %w (after %q)", err, l)
		}
		l = strings.TrimRight(l, "\r\n")
		switch {
		case tag != "" && strings.HasPrefix(l, tag):
			return l, nil
		case tag == "" && (len(l) < 4 || l[3] != '-'):
			return l, nil
		}
	}
}

// expect runs cmd (or, when cmd is "", reads a greeting) and checks that
// the reply starts with want.
func (c *lineConn) expect(cmd, tag, want string) error {
	var r string
	var err error
	if cmd == "" {
		r, err = c.reply(tag)
	} else {
		r, err = c.command(cmd, tag)
	}
	if err == nil && !strings.HasPrefix(r, want) {
		err = fmt.Errorf("%q: got %q, want %s…", cmd, r, want)
	}
	return err
}

// imapStartTLS connects client n to the IMAP listener and upgrades with
// STARTTLS, ready for LOGIN.
func imapStartTLS(addr string, n int) (*lineConn, error) {
	c, err := dialFrom(addr, n)
	if err != nil {
		return nil, err
	}
	if err := c.expect("", "* ", "* OK"); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.expect("a STARTTLS", "a ", "a OK"); err != nil {
		c.Close()
		return nil, err
	}
	tc := tls.Client(c.Conn, insecureTLS)
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS: %w", err)
	}
	return &lineConn{Conn: tc, r: bufio.NewReader(tc)}, nil
}

// imapLogin logs user in as client n and returns the tagged reply.
func imapLogin(addr string, n int, user string) (string, error) {
	c, err := imapStartTLS(addr, n)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.command(loginCommand(user), "b ")
}

func loginCommand(user string) string {
	return fmt.Sprintf("b LOGIN %q %q", user, testusers.Password(user))
}

// smtpMailFrom opens a transaction from client n on the MTA port, ready
// for RCPT.
func smtpMailFrom(addr string, n int) (*lineConn, error) {
	c, err := dialFrom(addr, n)
	if err != nil {
		return nil, err
	}
	for _, step := range [][2]string{{"", "220"}, {"EHLO client.remote.test", "250"}, {"MAIL FROM:<someone@remote.test>", "250"}} {
		if err := c.expect(step[0], "", step[1]); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}
