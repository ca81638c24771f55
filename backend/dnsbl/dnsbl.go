// Package dnsbl asks DNS blocklists and allowlists (RFC 5782) about a
// client address: each zone the address is listed in adds its weight
// (negative for an allowlist), and a sum at or above the threshold is a
// refusal naming the heaviest zone. Answers are cached per address, so a
// client opening many connections costs one round of questions.
package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Resolver asks for the A records of a name; *dnsclient.Resolver is one.
// A name that does not exist must be a *net.DNSError with IsNotFound.
type Resolver interface {
	LookupA(ctx context.Context, name string) ([]netip.Addr, error)
}

// Zone is one list.
type Zone struct {
	// Name is the list's DNS zone, e.g. "zen.spamhaus.org".
	Name string
	// Weight is added to the score when the client is listed; negative
	// for an allowlist (e.g. list.dnswl.org). Zero counts as 1.
	Weight float64
	// Codes restricts which answers count as listed (e.g. 127.0.0.2 or
	// a range 127.0.0.4-127.0.0.7); empty counts every listing answer.
	Codes []CodeRange
}

// CodeRange is an inclusive range of answer addresses.
type CodeRange struct{ From, To netip.Addr }

// ParseCodes reads "127.0.0.2" or "127.0.0.4-127.0.0.7".
func ParseCodes(s string) (CodeRange, error) {
	a, b, isRange := strings.Cut(strings.TrimSpace(s), "-")
	from, err := netip.ParseAddr(strings.TrimSpace(a))
	if err != nil || !from.Is4() {
		return CodeRange{}, fmt.Errorf("dnsbl: answer code %q: want an IPv4 address or range", s)
	}
	to := from
	if isRange {
		if to, err = netip.ParseAddr(strings.TrimSpace(b)); err != nil || !to.Is4() || to.Less(from) {
			return CodeRange{}, fmt.Errorf("dnsbl: answer code range %q", s)
		}
	}
	return CodeRange{From: from, To: to}, nil
}

func (r CodeRange) contains(a netip.Addr) bool {
	return !a.Less(r.From) && !r.To.Less(a)
}

// Hit is one zone that lists the client.
type Hit struct {
	Zone   string
	Weight float64
	// Answers are the listing answers (e.g. 127.0.0.2), and Meaning what
	// a Spamhaus zone says they mean (SBL, XBL, PBL…), when known.
	Answers []netip.Addr
	Meaning []string
}

// Verdict is what the lists say of one client.
type Verdict struct {
	Score float64
	Hits  []Hit
	// Listed is Score >= the threshold.
	Listed bool
	// Problems are zones that could not be asked or answered an error
	// code (a refused or rate-limited query); they count as not listed.
	Problems []string
}

// Zone names the listing zone with the largest weight, for the reply.
func (v Verdict) Zone() string {
	best := -1
	for i, h := range v.Hits {
		if h.Weight > 0 && (best < 0 || h.Weight > v.Hits[best].Weight) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return v.Hits[best].Zone
}

// Defaults of a Checker's zero fields.
const (
	DefaultThreshold = 1
	DefaultCacheTTL  = 10 * time.Minute
	DefaultCacheSize = 10000
)

// Checker asks the configured zones.
type Checker struct {
	Resolver Resolver
	Zones    []Zone
	// Threshold is the score that refuses a client (default 1).
	Threshold float64
	// Allow lists networks that are never looked up (Postfix's
	// postscreen_access_list permit): partners, monitoring.
	Allow []netip.Prefix
	// CacheTTL is how long a verdict is reused (default 10m);
	// CacheSize bounds how many addresses are remembered (default 10000).
	CacheTTL  time.Duration
	CacheSize int
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu    sync.Mutex
	cache map[netip.Addr]cached
}

type cached struct {
	v       Verdict
	expires time.Time
}

// Allowed reports whether ip is in an allowlisted network.
func (c *Checker) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range c.Allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Check returns the verdict for ip, from the cache when it is fresh.
// Lookup failures are never a refusal: they are reported in Problems.
func (c *Checker) Check(ctx context.Context, ip netip.Addr) Verdict {
	ip = ip.Unmap()
	if !ip.IsValid() || len(c.Zones) == 0 || c.Allowed(ip) {
		return Verdict{}
	}
	now := c.now()
	c.mu.Lock()
	if e, ok := c.cache[ip]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		return e.v
	}
	c.mu.Unlock()

	v := c.lookup(ctx, ip)
	if ctx.Err() != nil {
		return v // a dropped client's half answer is not remembered
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cache == nil {
		c.cache = make(map[netip.Addr]cached)
	}
	size := c.CacheSize
	if size <= 0 {
		size = DefaultCacheSize
	}
	if len(c.cache) >= size {
		// Drop the expired, then anything: the cache only saves queries.
		for k, e := range c.cache {
			if !now.Before(e.expires) || len(c.cache) >= size {
				delete(c.cache, k)
			}
		}
	}
	ttl := c.CacheTTL
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	c.cache[ip] = cached{v: v, expires: now.Add(ttl)}
	return v
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// lookup asks every zone at once.
func (c *Checker) lookup(ctx context.Context, ip netip.Addr) Verdict {
	type answer struct {
		hit     *Hit
		problem string
	}
	answers := make([]answer, len(c.Zones))
	var wg sync.WaitGroup
	rev := Reverse(ip)
	for i, z := range c.Zones {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addrs, err := c.Resolver.LookupA(ctx, rev+"."+strings.TrimSuffix(z.Name, "."))
			if err != nil {
				if !notFound(err) {
					answers[i].problem = z.Name + ": " + err.Error()
				}
				return
			}
			hit, problem := Interpret(z, addrs)
			answers[i] = answer{hit: hit, problem: problem}
		}()
	}
	wg.Wait()
	var v Verdict
	for _, a := range answers {
		if a.problem != "" {
			v.Problems = append(v.Problems, a.problem)
		}
		if a.hit != nil {
			v.Hits = append(v.Hits, *a.hit)
			v.Score += a.hit.Weight
		}
	}
	threshold := c.Threshold
	if threshold == 0 {
		threshold = DefaultThreshold
	}
	v.Listed = v.Score >= threshold
	return v
}

// notFound tells "not listed" (NXDOMAIN, no A record) from a failure.
func notFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// Reverse is the query label of ip: dotted octets or nibbles, reversed
// (RFC 5782 2.1, 2.4).
func Reverse(ip netip.Addr) string {
	ip = ip.Unmap()
	b := ip.AsSlice()
	var parts []string
	if ip.Is4() {
		for i := len(b) - 1; i >= 0; i-- {
			parts = append(parts, strconv.Itoa(int(b[i])))
		}
		return strings.Join(parts, ".")
	}
	const hex = "0123456789abcdef"
	for i := len(b) - 1; i >= 0; i-- {
		parts = append(parts, string(hex[b[i]&0xf]), string(hex[b[i]>>4]))
	}
	return strings.Join(parts, ".")
}

// spamhausErrors are answers that say the query was refused, not that
// the client is listed (127.255.255.0/24: typing error, public resolver,
// excessive queries).
var spamhausErrors = netip.MustParsePrefix("127.255.255.0/24")

// loopback8 is where RFC 5782 2.3 puts every listing answer.
var loopback8 = netip.MustParsePrefix("127.0.0.0/8")

// Interpret reads one zone's A answers: a hit when a listing answer
// counts for the zone, or a problem when the zone answered an error code.
// Answers outside 127/8 (a hijacking resolver's ad server) and
// 127.0.0.1 (not a listing by RFC 5782 5) are ignored.
func Interpret(z Zone, answers []netip.Addr) (*Hit, string) {
	var hit *Hit
	var problem string
	for _, a := range answers {
		a = a.Unmap()
		switch {
		case !a.Is4() || !loopback8.Contains(a) || a == netip.AddrFrom4([4]byte{127, 0, 0, 1}):
			continue
		case spamhausErrors.Contains(a):
			problem = z.Name + " refused the query (" + a.String() + ")"
			continue
		}
		if len(z.Codes) > 0 && !anyContains(z.Codes, a) {
			continue
		}
		if hit == nil {
			w := z.Weight
			if w == 0 {
				w = 1
			}
			hit = &Hit{Zone: z.Name, Weight: w}
		}
		hit.Answers = append(hit.Answers, a)
		if m := spamhausMeaning(z.Name, a); m != "" {
			hit.Meaning = append(hit.Meaning, m)
		}
	}
	return hit, problem
}

func anyContains(rs []CodeRange, a netip.Addr) bool {
	for _, r := range rs {
		if r.contains(a) {
			return true
		}
	}
	return false
}

// spamhausMeaning names the Spamhaus list behind a zen/sbl/xbl/pbl
// answer, for logs and the reply.
func spamhausMeaning(zone string, a netip.Addr) string {
	if !strings.Contains(strings.ToLower(zone), "spamhaus") {
		return ""
	}
	switch b := a.As4(); b[3] {
	case 2:
		return "SBL"
	case 3:
		return "CSS"
	case 4, 5, 6, 7:
		return "XBL"
	case 9:
		return "DROP"
	case 10, 11:
		return "PBL"
	}
	return ""
}

// ListedError refuses a listed client; its text is the reply's, naming
// the zone as Postfix's reject_rbl_client does.
type ListedError struct {
	IP      netip.Addr
	Verdict Verdict
}

func (e *ListedError) Error() string {
	zone := e.Verdict.Zone()
	text := "Service unavailable; client [" + e.IP.String() + "] blocked using " + zone
	for _, h := range e.Verdict.Hits {
		if h.Zone == zone && len(h.Meaning) > 0 {
			text += " (" + strings.Join(h.Meaning, ", ") + ")"
		}
	}
	return text
}

// Name names the blocklist check in logs and metrics.
func (c *Checker) Name() string { return "dnsbl" }

// ScreenRcpt refuses a client whose score reaches the threshold; it
// implements the SMTP server's Screen. The verdict is cached, so a
// message to many recipients asks the lists once.

func (c *Checker) ScreenRcpt(ctx context.Context, ip netip.Addr, _, _, _ string) error {
	if v := c.Check(ctx, ip); v.Listed {
		return &ListedError{IP: ip.Unmap(), Verdict: v}
	}
	return nil
}
