package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/vmaild/vmaild/backend/inbound"
	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/ldap"
	sqldir "github.com/vmaild/vmaild/userdb/sql"
)

// serverCheck is what `config check` found out about one server or file.
type serverCheck struct {
	name string
	ok   string // what to print when err is nil
	err  error
}

// checkTimeout bounds one server's check when its own timeout key is 0.
const checkTimeout = 5 * time.Second

// checkServers reaches every server the configuration names, all at once
// so that several dead ones cost one timeout, and reports each. It writes
// nothing: SQLite is opened read-only, and a missing file is only noted.
// A server whose keys already have problems is not tried again.
func checkServers(ctx context.Context, cfg Config, problems []string) []serverCheck {
	broken := func(prefix string) bool {
		for _, p := range problems {
			if strings.HasPrefix(p, prefix) {
				return true
			}
		}
		return false
	}
	var checks []func() serverCheck
	if !broken("sql.") {
		checks = append(checks, func() serverCheck { return checkSQL(ctx, cfg.SQL) })
	}
	if cfg.UserDB.Accounts == "ldap" && !broken("ldap.") {
		for _, u := range cfg.LDAP.URLs {
			c := cfg.LDAP
			c.URLs = []string{u}
			checks = append(checks, func() serverCheck { return checkLDAP(ctx, c) })
		}
	}
	if a := cfg.Queue.Smarthost.Address; a != "" && !broken("queue.smarthost.") {
		checks = append(checks, func() serverCheck { return checkTCP(ctx, "smarthost "+a, a) })
	}
	if a := cfg.Queue.Resolver; a != "" && !broken("queue.resolver") {
		dane := cfg.Queue.TLS.DANE
		checks = append(checks, func() serverCheck { return checkResolver(ctx, a, dane) })
	}
	if cfg.TLS.CertFile != "" || cfg.TLS.KeyFile != "" {
		checks = append(checks, func() serverCheck { return checkCertificate(cfg.TLS) })
	}
	if !broken("dkim") {
		checks = append(checks, func() serverCheck { return checkDKIM(cfg.DKIM) })
	}
	if !broken("inbound.") {
		for name, addr := range scannerAddresses(cfg.Inbound) {
			checks = append(checks, func() serverCheck { return checkScanner(ctx, name, addr) })
		}
	}
	results := make([]serverCheck, len(checks))
	var wg sync.WaitGroup
	for i, check := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = check()
		}()
	}
	wg.Wait()
	return results
}

func checkSQL(ctx context.Context, c sqldir.Config) serverCheck {
	name := "sql (" + c.Driver + ")"
	pending, err := sqldir.Check(ctx, c)
	switch {
	case errors.Is(err, sqldir.ErrNoDatabase):
		return serverCheck{name: name, ok: fmt.Sprintf("no database at %s yet (`vmaild serve` or `vmaild db migrate` creates it)", c.DSN)}
	case err != nil:
		return serverCheck{name: name, err: fmt.Errorf("%s unreachable: %w", name, err)}
	case len(pending) > 0 && c.Driver == "sqlite":
		// serve migrates the embedded database itself.
		return serverCheck{name: name, ok: fmt.Sprintf("reachable; %d schema migration(s) to apply, which `vmaild serve` does", len(pending))}
	case len(pending) > 0:
		return serverCheck{name: name, err: fmt.Errorf("%s: reachable, but the schema lacks %s: run `vmaild db migrate`", name, strings.Join(pending, ", "))}
	}
	return serverCheck{name: name, ok: "reachable"}
}

// checkLDAP binds and searches: a lookup that finds nothing proves both.
func checkLDAP(ctx context.Context, c ldap.Config) serverCheck {
	name := "ldap " + c.URLs[0]
	src, err := ldap.New(c)
	if err != nil {
		return serverCheck{name: name, err: fmt.Errorf("%s: %w", name, err)}
	}
	defer src.Close()
	if _, err := src.LookupAccount(ctx, "postmaster@vmaild.invalid"); err != nil && !errors.Is(err, userdb.ErrNotFound) {
		return serverCheck{name: name, err: fmt.Errorf("%s unreachable: %w", name, err)}
	}
	return serverCheck{name: name, ok: "reachable"}
}

func checkTCP(ctx context.Context, name, addr string) serverCheck {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return serverCheck{name: name, err: fmt.Errorf("%s unreachable: %w", name, err)}
	}
	conn.Close()
	return serverCheck{name: name, ok: "reachable"}
}

// scannerAddresses are the sockets of the configured inbound checks, by
// the name config check reports them under.
func scannerAddresses(c InboundConfig) map[string]string {
	out := map[string]string{}
	if c.Clamd.Address != "" {
		out["clamd "+c.Clamd.Address] = c.Clamd.Address
	}
	if c.Spamd.Address != "" {
		out["spamd "+c.Spamd.Address] = c.Spamd.Address
	}
	if u, err := url.Parse(c.Rspamd.URL); err == nil && u.Host != "" {
		host := u.Host
		if u.Port() == "" {
			port := "80"
			if u.Scheme == "https" {
				port = "443"
			}
			host = net.JoinHostPort(u.Hostname(), port)
		}
		out["rspamd "+c.Rspamd.URL] = host
	}
	for _, m := range c.Milter.Sockets {
		name, addr, _ := strings.Cut(m, "=")
		out["milter "+name+" "+addr] = addr
	}
	return out
}

// checkScanner connects to a scanner's socket (TCP or unix, as the
// checks do) and hangs up.
func checkScanner(ctx context.Context, name, addr string) serverCheck {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	_, stop, err := inbound.Dial(ctx, addr)
	if err != nil {
		return serverCheck{name: name, err: fmt.Errorf("%s unreachable: %w", name, err)}
	}
	stop()
	return serverCheck{name: name, ok: "reachable"}
}

// checkResolver asks the DNS server for the root's name servers, which
// every recursive resolver answers; with DANE on it also says whether
// the answer came validated (the root zone is signed), as DANE trusts
// nothing else.
func checkResolver(ctx context.Context, addr string, dane bool) serverCheck {
	name := "resolver " + addr
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(".", dns.TypeNS)
	m.AuthenticatedData = true
	resp, _, err := (&dns.Client{Timeout: checkTimeout}).ExchangeContext(ctx, m, addr)
	if err != nil {
		return serverCheck{name: name, err: fmt.Errorf("%s unreachable: %w", name, err)}
	}
	switch {
	case !dane:
		return serverCheck{name: name, ok: "answers"}
	case resp.AuthenticatedData:
		return serverCheck{name: name, ok: "answers, validates DNSSEC (DANE can apply)"}
	}
	return serverCheck{name: name, ok: "answers, but does not validate DNSSEC (no AD bit): DANE (queue.tls.dane) never applies"}
}

func checkCertificate(f TLSFiles) serverCheck {
	const name = "tls certificate"
	if _, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile); err != nil {
		return serverCheck{name: name, err: fmt.Errorf("tls.cert_file %s, tls.key_file %s: %w", f.CertFile, f.KeyFile, err)}
	}
	return serverCheck{name: name, ok: "loads"}
}

// checkDKIM loads the signing keys as the start will: a key that does not
// load is a problem here rather than a daemon that does not start.
func checkDKIM(c DKIMConfig) serverCheck {
	const name = "dkim keys"
	signer, warnings, err := c.signer()
	if err != nil {
		return serverCheck{name: name, err: err}
	}
	ok := fmt.Sprintf("%d domains sign: %s", len(signer.Domains()), strings.Join(signer.Domains(), ", "))
	if len(signer.Domains()) == 0 {
		ok = "none (nothing is signed)"
	}
	for _, w := range warnings {
		ok += "; warning: " + w.Error()
	}
	return serverCheck{name: name, ok: ok}
}
