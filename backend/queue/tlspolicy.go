package queue

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"

	"github.com/emersion/go-message/textproto"
	"github.com/miekg/dns"

	"github.com/vmaild/vmaild/backend/mtasts"
	"github.com/vmaild/vmaild/userdb"
)

// TLSLevel is the TLS a destination gets, named as Postfix's
// smtp_tls_security_level values are.
type TLSLevel string

const (
	// TLSNone: plaintext, STARTTLS is not even tried.
	TLSNone TLSLevel = "none"
	// TLSMay: STARTTLS when offered, any certificate, plaintext when the
	// handshake fails.
	TLSMay TLSLevel = "may"
	// TLSEncrypt: STARTTLS required, any certificate.
	TLSEncrypt TLSLevel = "encrypt"
	// TLSVerify: STARTTLS required, a certificate valid for the MX host
	// name under the trust roots.
	TLSVerify TLSLevel = "verify"
	// TLSDANE: the MX host's DNSSEC-validated TLSA records decide
	// (RFC 7672); without them, as may.
	TLSDANE TLSLevel = "dane"
)

// TLSPolicyEntry is one line of the table: a destination and its level.
type TLSPolicyEntry struct {
	// Destination is a domain ("example.com"), or with a leading dot
	// every domain below it (".example.com").
	Destination string
	Level       TLSLevel
}

// TLSPolicyTable is the per-destination table, like Postfix's
// smtp_tls_policy_maps. An entry replaces the automatic policy (DANE,
// then MTA-STS, then may) for the domains it names.
type TLSPolicyTable []TLSPolicyEntry

// ParseTLSPolicyTable reads entries of the form "DESTINATION LEVEL", one
// per element; empty elements and "#" comments are skipped. A
// destination appearing twice is an error, as the later one would
// silently lose.
func ParseTLSPolicyTable(lines []string) (TLSPolicyTable, error) {
	var t TLSPolicyTable
	seen := make(map[string]bool)
	for i, line := range lines {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("tls policy entry %d %q: want DESTINATION LEVEL", i+1, line)
		}
		dest := strings.ToLower(strings.TrimSuffix(f[0], "."))
		name := strings.TrimPrefix(dest, ".")
		canon, err := userdb.CanonicalDomain(name)
		if err != nil || canon != name {
			return nil, fmt.Errorf("tls policy entry %d: %q is not a domain or .domain", i+1, f[0])
		}
		level := TLSLevel(strings.ToLower(f[1]))
		switch level {
		case TLSNone, TLSMay, TLSEncrypt, TLSVerify, TLSDANE:
		default:
			return nil, fmt.Errorf("tls policy entry %d: level %q is not none, may, encrypt, verify or dane", i+1, f[1])
		}
		if seen[dest] {
			return nil, fmt.Errorf("tls policy entry %d: %s is listed twice", i+1, dest)
		}
		seen[dest] = true
		t = append(t, TLSPolicyEntry{Destination: dest, Level: level})
	}
	return t, nil
}

// lookup finds the entry for a domain: the exact name first, then the
// closest ".parent" entry.
func (t TLSPolicyTable) lookup(domain string) (TLSLevel, bool) {
	domain = strings.ToLower(domain)
	best, bestLen := TLSLevel(""), -1
	for _, e := range t {
		if e.Destination == domain {
			return e.Level, true
		}
		if strings.HasPrefix(e.Destination, ".") && strings.HasSuffix(domain, e.Destination) && len(e.Destination) > bestLen {
			best, bestLen = e.Level, len(e.Destination)
		}
	}
	return best, bestLen >= 0
}

// tlsPolicy is the one place that decides what TLS a delivery to a
// destination needs: the table, DANE and MTA-STS, and REQUIRETLS.
type tlsPolicy struct {
	table       TLSPolicyTable
	opportunism TLSLevel // may, or none with DisableSTARTTLS
	dane        bool
	sts         *mtasts.Cache // nil: MTA-STS off
	res         *resolver
	port        int
}

// destPolicy is what applies to one destination domain.
type destPolicy struct {
	domain   string
	level    TLSLevel // the table's, or "" for automatic
	mxSecure bool     // the MX answer was DNSSEC-validated
	sts      *mtasts.Policy
	stsErr   error // why no fresh MTA-STS policy could be had, for the log
}

// hostPolicy is what applies to one MX host of a destination.
type hostPolicy struct {
	// name says which policy applied, for logs and DSNs: "dane",
	// "mta-sts enforce", "table verify", "may", …
	name string
	mode tlsMode
	// verify: the certificate must be checked (PKIX for the host name, or
	// against tlsa); a failed check fails the handshake unless report.
	verify bool
	tlsa   []*dns.TLSA
	// report: a policy in testing mode, whose failures are logged and
	// delivery goes on as with may; reportWhy is a failure known before
	// connecting (the host is not in the policy).
	report    bool
	reportWhy string
	// authenticated: DANE or MTA-STS vouch for this host (REQUIRETLS).
	authenticated bool
	// published: the policy is the destination's own (DANE, MTA-STS),
	// which "TLS-Required: No" lets a sender set aside.
	published bool
}

// forDomain gathers what applies to a domain: its table entry, else its
// MTA-STS policy. A REQUIRETLS message always gets the automatic policy,
// as the sender's demand outranks a local downgrade.
func (p *tlsPolicy) forDomain(ctx context.Context, domain string, mxSecure, requireTLS bool) destPolicy {
	dp := destPolicy{domain: domain, mxSecure: mxSecure}
	if level, ok := p.table.lookup(domain); ok && !requireTLS {
		dp.level = level
		return dp
	}
	if p.sts != nil {
		r := p.sts.Get(ctx, domain)
		dp.sts, dp.stsErr = r.Policy, r.Err
	}
	return dp
}

// msgTLS is what the message itself asks of TLS: REQUIRETLS from its
// envelope, or "TLS-Required: No" in its header (RFC 8689 section 5),
// read only when a policy would hold the message back.
type msgTLS struct {
	requireTLS    bool
	tlsRequiredNo func() bool
}

// forHost decides for one MX host; addrSecure says its address records
// were DNSSEC-validated. A non-nil reply means the host must not be used
// (MTA-STS enforce and the host not in the policy, a TLSA lookup that
// failed, REQUIRETLS without an authenticated path). A message with
// "TLS-Required: No" gets the policies the destination publishes (DANE,
// MTA-STS) applied but not enforced, as its sender asked; the admin's
// table still is.
func (p *tlsPolicy) forHost(ctx context.Context, dp destPolicy, host string, addrSecure bool, msg msgTLS) (hostPolicy, *reply) {
	hp, fail := p.hostPolicy(ctx, dp, host, addrSecure, msg.requireTLS)
	enforcing := fail != nil || hp.mode == tlsRequired || hp.verify && !hp.report
	if hp.published && enforcing && !msg.requireTLS && msg.tlsRequiredNo != nil && msg.tlsRequiredNo() {
		relaxed := hostPolicy{name: hp.name + " (not enforced: TLS-Required: No)", mode: tlsOpportunistic,
			verify: hp.verify, tlsa: hp.tlsa, report: true, published: true}
		if fail != nil {
			relaxed.reportWhy = fail.Text
		}
		return relaxed, nil
	}
	return hp, fail
}

// hostPolicy is forHost before the sender's opt-out: the table, then
// DANE, then MTA-STS, then REQUIRETLS's demand, then opportunism.
func (p *tlsPolicy) hostPolicy(ctx context.Context, dp destPolicy, host string, addrSecure, requireTLS bool) (hostPolicy, *reply) {
	switch dp.level {
	case TLSNone:
		return hostPolicy{name: "table none", mode: tlsNone}, nil
	case TLSMay:
		return hostPolicy{name: "table may", mode: tlsOpportunistic}, nil
	case TLSEncrypt:
		return hostPolicy{name: "table encrypt", mode: tlsRequired}, nil
	case TLSVerify:
		return hostPolicy{name: "table verify", mode: tlsRequired, verify: true}, nil
	}
	// DANE first: validated TLSA records outrank MTA-STS (RFC 8461
	// section 2). TLSA records are looked for only where the MX and
	// address answers were validated (RFC 7672 section 2.2): an insecure
	// name is not expected to have them.
	if (p.dane || dp.level == TLSDANE) && dp.mxSecure && addrSecure {
		hp, fail := p.daneHost(ctx, host)
		// Records that are all unusable make TLS mandatory but
		// authenticate nothing: REQUIRETLS may still get its
		// authentication from MTA-STS.
		if fail != nil || hp.authenticated || hp.name != "" && !requireTLS {
			return hp, fail
		}
	}
	if dp.level == TLSDANE {
		return hostPolicy{name: "table dane (no TLSA: may)", mode: tlsOpportunistic}, nil
	}
	if dp.level == "" && dp.sts != nil {
		sts := dp.sts
		name := "mta-sts " + string(sts.Mode)
		enforce := sts.Mode == mtasts.Enforce || requireTLS
		if !sts.Match(host) {
			if enforce {
				return hostPolicy{name: name, published: true}, &reply{Status: "4.7.5", Host: host,
					Text: "TLS policy " + name + ": MX host " + host + " is not in the MTA-STS policy of " + dp.domain}
			}
			return hostPolicy{name: name, mode: tlsOpportunistic, report: true, published: true,
				reportWhy: "MX host " + host + " is not in the MTA-STS policy of " + dp.domain}, nil
		}
		if enforce {
			return hostPolicy{name: name, mode: tlsRequired, verify: true, authenticated: true, published: true}, nil
		}
		return hostPolicy{name: name, mode: tlsOpportunistic, verify: true, report: true, published: true}, nil
	}
	if requireTLS {
		why := "neither DNSSEC-validated TLSA records nor an MTA-STS policy"
		if dp.stsErr != nil {
			// The policy may come back: retry rather than bounce.
			return hostPolicy{name: "requiretls"}, &reply{Status: "4.7.5", Host: host,
				Text: "REQUIRETLS: no MTA-STS policy for " + dp.domain + " could be had: " + oneLine(dp.stsErr.Error())}
		}
		return hostPolicy{name: "requiretls"}, &reply{Perm: true, Status: "5.7.30", Host: host,
			Text: "REQUIRETLS: " + dp.domain + " has " + why + " to authenticate " + host}
	}
	if p.opportunism == TLSNone {
		return hostPolicy{name: "none", mode: tlsNone}, nil
	}
	return hostPolicy{name: "may", mode: tlsOpportunistic}, nil
}

// forSmarthost is the policy towards the smarthost, which replaces the
// destinations' own: TLS as its configuration says, verified unless the
// admin chose otherwise. The admin's relay stands in for DANE and
// MTA-STS for a REQUIRETLS message when its certificate is verified.
func forSmarthost(sh *Smarthost, host string, requireTLS bool) (hostPolicy, *reply) {
	hp := hostPolicy{name: "smarthost", mode: tlsRequired, verify: !sh.InsecureSkipVerify, authenticated: !sh.InsecureSkipVerify}
	switch {
	case sh.ImplicitTLS:
		hp.mode = tlsImplicit
	case sh.PlainText:
		hp = hostPolicy{name: "smarthost plaintext", mode: tlsNone}
	}
	if requireTLS && !hp.authenticated {
		return hp, &reply{Perm: true, Status: "5.7.30", Host: host, Text: "REQUIRETLS: the smarthost is configured without a verified TLS connection"}
	}
	return hp, nil
}

// daneHost looks up the TLSA records of an MX host whose name came from
// a validated MX answer. An empty name means DANE does not apply (no
// records, or an answer without the AD bit).
func (p *tlsPolicy) daneHost(ctx context.Context, host string) (hostPolicy, *reply) {
	name := fmt.Sprintf("_%d._tcp.%s", p.port, host)
	resp, err := p.res.query(ctx, name, dns.TypeTLSA)
	if err != nil {
		if errors.Is(err, errNXDomain) {
			return hostPolicy{}, nil
		}
		// RFC 7672 section 2.2: a failed TLSA lookup could be an attacker
		// hiding the records; the host is not used.
		return hostPolicy{name: "dane", published: true}, &reply{Status: "4.7.5", Host: host, Text: "TLS policy dane: TLSA lookup failed: " + oneLine(err.Error())}
	}
	if !resp.AuthenticatedData {
		return hostPolicy{}, nil // only validated answers are trusted
	}
	var all, usable []*dns.TLSA
	for _, rr := range resp.Answer {
		if t, ok := rr.(*dns.TLSA); ok {
			all = append(all, t)
			if tlsaUsable(t) {
				usable = append(usable, t)
			}
		}
	}
	switch {
	case len(all) == 0:
		return hostPolicy{}, nil
	case len(usable) == 0:
		// RFC 7672 section 2.2: records exist but none is usable, so TLS
		// is still mandatory, without authentication.
		return hostPolicy{name: "dane (no usable TLSA: encrypt)", mode: tlsRequired, published: true}, nil
	}
	return hostPolicy{name: "dane", mode: tlsRequired, verify: true, tlsa: usable, authenticated: true, published: true}, nil
}

// newTLSPolicy builds the policy from the configuration; MTA-STS TXT
// lookups and the policy host's addresses go through the queue's
// resolver, the connection through Config.Dial.
func newTLSPolicy(cfg *Config, res *resolver) *tlsPolicy {
	p := &tlsPolicy{table: cfg.TLSPolicy, opportunism: TLSMay, dane: !cfg.DisableDANE, res: res, port: cfg.Port}
	if cfg.DisableSTARTTLS {
		p.opportunism = TLSNone
	}
	if res == nil {
		p.dane = false
		return p
	}
	if !cfg.DisableMTASTS {
		var roots *x509.CertPool
		if cfg.TLSConfig != nil {
			roots = cfg.TLSConfig.RootCAs
		}
		dial := cfg.Dial
		p.sts = &mtasts.Cache{
			LookupTXT: res.txtRecords,
			RootCAs:   roots,
			Timeout:   cfg.MTASTSTimeout,
			File:      filepath.Join(cfg.Dir, stsCacheFile),
			Logger:    cfg.Logger,
			Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				host, port, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				addrs, _, fail := res.lookupAddrs(ctx, host)
				if fail != nil {
					return nil, errors.New(fail.Text)
				}
				var errs []error
				for _, a := range addrs {
					c, err := dial(ctx, network, net.JoinHostPort(a.String(), port))
					if err == nil {
						return c, nil
					}
					errs = append(errs, err)
				}
				return nil, errors.Join(errs...)
			},
		}
	}
	return p
}

// tlsRequiredNo reports whether a queued message's header has
// "TLS-Required: No" (RFC 8689 section 5). A header that cannot be read
// or parsed asks nothing.
func (q *Queue) tlsRequiredNo(it *item) bool {
	hdr, err := q.originalHeaders(it)
	if err != nil {
		return false
	}
	h, err := textproto.ReadHeader(bufio.NewReader(io.MultiReader(bytes.NewReader(hdr), strings.NewReader("\r\n"))))
	if err != nil {
		return false
	}
	return strings.EqualFold(strings.TrimSpace(h.Get("TLS-Required")), "No")
}

// txtRecords returns the TXT records at name, each one's strings joined;
// NXDOMAIN and no records wrap mtasts.ErrNoRecord.
func (r *resolver) txtRecords(ctx context.Context, name string) ([]string, error) {
	resp, err := r.query(ctx, name, dns.TypeTXT)
	if errors.Is(err, errNXDomain) {
		return nil, fmt.Errorf("%w: %w", mtasts.ErrNoRecord, err)
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range resp.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dns TXT %s: %w", name, mtasts.ErrNoRecord)
	}
	return out, nil
}
