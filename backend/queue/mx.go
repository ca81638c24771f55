package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// resolver asks one configured DNS server (normally the local recursive
// resolver) for MX and address records, and classifies failures the way
// delivery needs them: NXDOMAIN and null MX are permanent, everything
// else that goes wrong is temporary.
type resolver struct {
	addr    string
	timeout time.Duration
	udp     *dns.Client
	tcp     *dns.Client
}

func newResolver(addr string, timeout time.Duration) (*resolver, error) {
	if addr == "" {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("queue: no Resolver configured and /etc/resolv.conf unusable: %w", err)
		}
		if len(cc.Servers) == 0 {
			return nil, errors.New("queue: no Resolver configured and no nameserver in /etc/resolv.conf")
		}
		addr = net.JoinHostPort(cc.Servers[0], cc.Port)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("queue: Resolver %q: %w", addr, err)
	}
	return &resolver{
		addr:    addr,
		timeout: timeout,
		udp:     &dns.Client{Net: "udp", Timeout: timeout},
		tcp:     &dns.Client{Net: "tcp", Timeout: timeout},
	}, nil
}

type mxHost struct {
	Name string // without the trailing dot
	Pref uint16
}

var errNXDomain = errors.New("no such domain (NXDOMAIN)")

// query sends one question, over TCP again when the UDP answer was
// truncated. A non-success rcode other than NXDOMAIN is an error.
func (r *resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	// Ask a validating resolver to say whether it validated the answer
	// (RFC 6840 5.7): DANE trusts only answers with the AD bit.
	m.AuthenticatedData = true
	resp, _, err := r.udp.ExchangeContext(ctx, m, r.addr)
	if err == nil && resp.Truncated {
		resp, _, err = r.tcp.ExchangeContext(ctx, m, r.addr)
	}
	qt := dns.TypeToString[qtype]
	if err != nil {
		return nil, fmt.Errorf("dns %s %s: %w", qt, name, err)
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
		return resp, nil
	case dns.RcodeNameError:
		return nil, fmt.Errorf("dns %s %s: %w", qt, name, errNXDomain)
	default:
		return nil, fmt.Errorf("dns %s %s: %s", qt, name, dns.RcodeToString[resp.Rcode])
	}
}

// lookupMX returns the hosts to try for a domain in order: by preference,
// shuffled among equal preference (RFC 5321 5.1), or the domain itself
// when it has no MX (implicit MX). secure says the resolver validated the
// answer (AD bit), which DANE needs. A non-nil reply is the failure for
// every recipient of the domain.
func (r *resolver) lookupMX(ctx context.Context, domain string, rng func(int) int) (hosts []mxHost, implicit, secure bool, fail *reply) {
	resp, err := r.query(ctx, domain, dns.TypeMX)
	if err != nil {
		if errors.Is(err, errNXDomain) {
			return nil, false, false, &reply{Perm: true, Status: "5.1.2", Text: err.Error()}
		}
		return nil, false, false, &reply{Status: "4.4.3", Text: err.Error()}
	}
	secure = resp.AuthenticatedData
	var null int
	for _, rr := range resp.Answer {
		mx, ok := rr.(*dns.MX)
		if !ok {
			continue // CNAME chain, RRSIG
		}
		if mx.Mx == "." {
			null++
			continue
		}
		hosts = append(hosts, mxHost{Name: strings.TrimSuffix(mx.Mx, "."), Pref: mx.Preference})
	}
	if null > 0 && len(hosts) == 0 {
		// RFC 7505: the domain accepts no mail; fail at once.
		return nil, false, false, &reply{Perm: true, Status: "5.1.10", Text: "domain " + domain + " does not accept mail (null MX)"}
	}
	if len(hosts) == 0 {
		return []mxHost{{Name: domain}}, true, secure, nil
	}
	slices.SortStableFunc(hosts, func(a, b mxHost) int { return int(a.Pref) - int(b.Pref) })
	for i := 0; i < len(hosts); {
		j := i + 1
		for j < len(hosts) && hosts[j].Pref == hosts[i].Pref {
			j++
		}
		same := hosts[i:j]
		for k := len(same) - 1; k > 0; k-- {
			l := rng(k + 1)
			same[k], same[l] = same[l], same[k]
		}
		i = j
	}
	return hosts, false, secure, nil
}

// lookupAddrs returns the IPv4 then IPv6 addresses of a host, and
// whether every answer was DNSSEC-validated (AD bit). A nil slice with a
// nil reply cannot happen; a reply says why there is none.
func (r *resolver) lookupAddrs(ctx context.Context, host string) ([]netip.Addr, bool, *reply) {
	var addrs []netip.Addr
	var errs []error
	nx := 0
	secure := true
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		resp, err := r.query(ctx, host, qt)
		if err != nil {
			if errors.Is(err, errNXDomain) {
				nx++
			}
			errs = append(errs, err)
			secure = false
			continue
		}
		secure = secure && resp.AuthenticatedData
		for _, rr := range resp.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(rr.A.To4()); ok {
					addrs = append(addrs, a)
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(rr.AAAA.To16()); ok {
					addrs = append(addrs, a)
				}
			}
		}
	}
	if len(addrs) > 0 {
		return addrs, secure, nil
	}
	if len(errs) == 0 || nx == len(errs) && nx == 2 {
		text := "host " + host + " has no address records"
		if nx > 0 {
			text = "host " + host + " not found (NXDOMAIN)"
		}
		return nil, false, &reply{Perm: true, Status: "5.1.2", Text: text}
	}
	return nil, false, &reply{Status: "4.4.3", Text: errors.Join(errs...).Error()}
}

// randIntN adapts a *rand.Rand for lookupMX; tests may pass their own.
func randIntN(r *rand.Rand) func(int) int { return r.IntN }
