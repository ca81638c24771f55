// Package dnsclient asks one configured DNS server (normally the local
// recursive resolver) the questions inbound checks need: TXT for SPF,
// DKIM and DMARC, MX and addresses for SPF mechanisms, A for DNS
// blocklists. Answers and failures come back in the shape of the
// standard library's net.Resolver (*net.DNSError with IsNotFound and
// IsTemporary), so libraries written against it (SPF, DMARC) classify
// them unchanged, while every packet goes through miekg/dns with our
// resolver and timeout.
package dnsclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DefaultTimeout bounds one question when the configuration says nothing.
const DefaultTimeout = 5 * time.Second

// Resolver sends questions to one server. Safe for concurrent use.
type Resolver struct {
	addr    string
	timeout time.Duration
	udp     *dns.Client
	tcp     *dns.Client
}

// New returns a resolver for the server addr (host:port); an empty addr
// takes the first nameserver of /etc/resolv.conf. A zero timeout is
// DefaultTimeout.
func New(addr string, timeout time.Duration) (*Resolver, error) {
	if addr == "" {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("dns: no resolver configured and /etc/resolv.conf unusable: %w", err)
		}
		if len(cc.Servers) == 0 {
			return nil, errors.New("dns: no resolver configured and no nameserver in /etc/resolv.conf")
		}
		addr = net.JoinHostPort(cc.Servers[0], cc.Port)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("dns: resolver %q: %w", addr, err)
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Resolver{
		addr:    addr,
		timeout: timeout,
		udp:     &dns.Client{Net: "udp", Timeout: timeout},
		tcp:     &dns.Client{Net: "tcp", Timeout: timeout},
	}, nil
}

// Query sends one question, over TCP again when the UDP answer was
// truncated, and returns the records of the asked type. NXDOMAIN and an
// empty answer are *net.DNSError with IsNotFound; SERVFAIL, REFUSED and
// network failures are IsTemporary.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	resp, _, err := r.udp.ExchangeContext(ctx, m, r.addr)
	if err == nil && resp.Truncated {
		resp, _, err = r.tcp.ExchangeContext(ctx, m, r.addr)
	}
	fail := func(text string, notFound, temp bool) error {
		// No Server: the text reaches Authentication-Results fields, which
		// need not tell the world where our resolver is.
		return &net.DNSError{Err: text, Name: name, IsNotFound: notFound, IsTemporary: temp, IsTimeout: errors.Is(err, context.DeadlineExceeded)}
	}
	if err != nil {
		return nil, fail(fmt.Sprintf("%s: %v", dns.TypeToString[qtype], err), false, true)
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, fail("no such domain", true, false)
	case dns.RcodeServerFailure, dns.RcodeRefused:
		return nil, fail(dns.RcodeToString[resp.Rcode], false, true)
	default:
		return nil, fail(dns.RcodeToString[resp.Rcode], false, false)
	}
	var rrs []dns.RR
	for _, rr := range resp.Answer {
		if rr.Header().Rrtype == qtype {
			rrs = append(rrs, rr)
		}
	}
	if len(rrs) == 0 {
		return nil, fail("no "+dns.TypeToString[qtype]+" record", true, false)
	}
	return rrs, nil
}

// LookupTXT returns each TXT record with its strings joined, as RFC 7208
// 3.3 and RFC 6376 3.6.2.2 read them.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.Query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}

// LookupMX returns the MX records of name, in the answer's order.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := r.Query(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	out := make([]*net.MX, 0, len(rrs))
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		out = append(out, &net.MX{Host: mx.Mx, Pref: mx.Preference})
	}
	return out, nil
}

// LookupIPAddr returns the IPv4 and IPv6 addresses of host; it fails only
// when both questions do, with the more temporary of the two errors.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	var out []net.IPAddr
	var firstErr error
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := r.Query(ctx, host, qt)
		if err != nil {
			var de *net.DNSError
			if firstErr == nil || errors.As(err, &de) && de.IsTemporary {
				firstErr = err
			}
			continue
		}
		for _, rr := range rrs {
			switch rr := rr.(type) {
			case *dns.A:
				out = append(out, net.IPAddr{IP: rr.A})
			case *dns.AAAA:
				out = append(out, net.IPAddr{IP: rr.AAAA})
			}
		}
	}
	if len(out) == 0 {
		return nil, firstErr
	}
	return out, nil
}

// LookupAddr returns the names of an address (PTR).
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	rev, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: addr}
	}
	rrs, err := r.Query(ctx, rev, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, rr.(*dns.PTR).Ptr)
	}
	return out, nil
}

// LookupA returns the IPv4 addresses of name: what a DNS blocklist
// answers.
func (r *Resolver) LookupA(ctx context.Context, name string) ([]netip.Addr, error) {
	rrs, err := r.Query(ctx, name, dns.TypeA)
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(rrs))
	for _, rr := range rrs {
		if a, ok := netip.AddrFromSlice(rr.(*dns.A).A.To4()); ok {
			out = append(out, a)
		}
	}
	return out, nil
}

// IsNotFound reports whether err says the name or record does not exist.
func IsNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// IsTemporary reports whether err may go away if asked again later.
func IsTemporary(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && (de.IsTemporary || de.IsTimeout)
}
