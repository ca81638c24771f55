package main

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vmaild/vmaild/backend/dnsbl"
	"github.com/vmaild/vmaild/backend/dnsclient"
	"github.com/vmaild/vmaild/backend/greylist"
	"github.com/vmaild/vmaild/backend/inbound"
	"github.com/vmaild/vmaild/backend/senderauth"
	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/protocols/smtp"
)

// InboundDNS is the resolver of the inbound checks (SPF, DKIM, DMARC,
// DNS blocklists).
type InboundDNS struct {
	Resolver string        `yaml:"resolver" help:"DNS server host:port the inbound checks ask (SPF, DKIM, DMARC, dnsbl); empty: queue.resolver, then resolv.conf"`
	Timeout  time.Duration `yaml:"timeout" help:"how long one DNS question of the inbound checks may take"`
}

// SenderAuthConfig is SPF, DKIM and DMARC on the smtp listener (package
// backend/senderauth).
type SenderAuthConfig struct {
	Enabled     bool   `yaml:"enabled" help:"check SPF, DKIM and DMARC of mail arriving on the smtp listener (not submission, not LMTP, not authenticated or mynetworks clients) and add one Authentication-Results field"`
	DMARCReject string `yaml:"dmarc_reject" help:"what happens to mail failing DMARC whose domain publishes p=reject: reject (550 5.7.1 at end of DATA), quarantine (deliver into Junk) or mark (only the header); p=quarantine is filed into Junk unless this is mark"`
	SPFFail     string `yaml:"spf_fail" help:"what happens to mail whose SPF result is fail (hard fail): reject, quarantine or mark"`
	// MaxSignatures bounds the work a message with many signatures costs.
	MaxSignatures int `yaml:"max_signatures" help:"DKIM signatures verified per message; more are ignored"`
}

// DNSBLConfig is DNS blocklists and allowlists at RCPT (package
// backend/dnsbl).
type DNSBLConfig struct {
	Zones     []string      `yaml:"zones" help:"lists asked about unauthenticated smtp clients outside mynetworks, ZONE[:WEIGHT[:CODES]]: weight added when listed (default 1, negative for an allowlist such as list.dnswl.org:-5), CODES the answers that count, comma-separated addresses or ranges (zen.spamhaus.org:1:127.0.0.2-127.0.0.9); empty: off"`
	Threshold float64       `yaml:"threshold" help:"score at which a client is refused with 554 5.7.1 naming the zone"`
	Allow     []string      `yaml:"allow" help:"client networks (CIDR) never looked up"`
	CacheTTL  time.Duration `yaml:"cache_ttl" help:"how long a client's answers are reused"`
}

// GreylistConfig is greylisting at RCPT (package backend/greylist), its
// triplets in the SQL directory's greylist table.
type GreylistConfig struct {
	Enabled       bool          `yaml:"enabled" help:"greylist unauthenticated smtp clients outside mynetworks: the first attempt of a (client network, sender, recipient) triplet gets 451 4.7.1"`
	Delay         time.Duration `yaml:"delay" help:"how long a new triplet is deferred"`
	RetryMax      time.Duration `yaml:"retry_max" help:"how long after the first attempt a retry still passes; later ones start over"`
	Remember      time.Duration `yaml:"remember" help:"how long a passed triplet stays passed without mail"`
	IPv4Prefix    int           `yaml:"ipv4_prefix" help:"prefix length grouping IPv4 clients into one greylisting client (a sender's pool of servers)"`
	IPv6Prefix    int           `yaml:"ipv6_prefix" help:"prefix length grouping IPv6 clients into one greylisting client"`
	AllowNetworks []string      `yaml:"allow_networks" help:"client networks (CIDR) never greylisted"`
	AllowDomains  []string      `yaml:"allow_domains" help:"sender or recipient domains never greylisted (subdomains included)"`
}

func defaultSenderChecks(c *Config) {
	c.InboundDNS = InboundDNS{Timeout: dnsclient.DefaultTimeout}
	c.SenderAuth = SenderAuthConfig{DMARCReject: "reject", SPFFail: "mark", MaxSignatures: senderauth.DefaultMaxSignatures}
	c.DNSBL = DNSBLConfig{Threshold: dnsbl.DefaultThreshold, CacheTTL: dnsbl.DefaultCacheTTL}
	c.Greylist = GreylistConfig{
		Delay: greylist.DefaultDelay, RetryMax: greylist.DefaultRetryMax, Remember: greylist.DefaultRemember,
		IPv4Prefix: greylist.DefaultIPv4Bits, IPv6Prefix: greylist.DefaultIPv6Bits,
	}
}

// validateSenderChecks checks the inbound keys without the network.
func (c *Config) validateSenderChecks() []string {
	var problems []string
	if _, err := senderauth.ParseAction(c.SenderAuth.DMARCReject); err != nil {
		problems = append(problems, "sender_auth.dmarc_reject: "+err.Error())
	}
	if _, err := senderauth.ParseAction(c.SenderAuth.SPFFail); err != nil {
		problems = append(problems, "sender_auth.spf_fail: "+err.Error())
	}
	if _, err := parseZones(c.DNSBL.Zones); err != nil {
		problems = append(problems, "dnsbl.zones: "+err.Error())
	}
	if c.DNSBL.Threshold <= 0 {
		problems = append(problems, "dnsbl.threshold: must be above 0")
	}
	for key, nets := range map[string][]string{"dnsbl.allow": c.DNSBL.Allow, "greylist.allow_networks": c.Greylist.AllowNetworks} {
		if _, err := parsePrefixes(nets); err != nil {
			problems = append(problems, key+": "+err.Error())
		}
	}
	if p := c.Greylist.IPv4Prefix; p < 0 || p > 32 {
		problems = append(problems, fmt.Sprintf("greylist.ipv4_prefix: %d is not 0..32", p))
	}
	if p := c.Greylist.IPv6Prefix; p < 0 || p > 128 {
		problems = append(problems, fmt.Sprintf("greylist.ipv6_prefix: %d is not 0..128", p))
	}
	return problems
}

// parseZones reads ZONE[:WEIGHT[:CODES]] entries.
func parseZones(specs []string) ([]dnsbl.Zone, error) {
	var zones []dnsbl.Zone
	for _, s := range specs {
		parts := strings.SplitN(strings.TrimSpace(s), ":", 3)
		z := dnsbl.Zone{Name: strings.TrimSuffix(parts[0], "."), Weight: 1}
		if z.Name == "" || strings.ContainsAny(z.Name, " /") {
			return nil, fmt.Errorf("%q: want ZONE[:WEIGHT[:CODES]]", s)
		}
		if len(parts) > 1 {
			w, err := strconv.ParseFloat(parts[1], 64)
			if err != nil || w == 0 {
				return nil, fmt.Errorf("%q: weight %q is not a non-zero number", s, parts[1])
			}
			z.Weight = w
		}
		if len(parts) > 2 {
			for _, c := range strings.Split(parts[2], ",") {
				r, err := dnsbl.ParseCodes(c)
				if err != nil {
					return nil, fmt.Errorf("%q: %w", s, err)
				}
				z.Codes = append(z.Codes, r)
			}
		}
		zones = append(zones, z)
	}
	return zones, nil
}

func parsePrefixes(nets []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, n := range nets {
		p, err := netip.ParsePrefix(strings.TrimSpace(n))
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix like 192.0.2.0/24", n)
		}
		out = append(out, p)
	}
	return out, nil
}

// inboundResolver is the DNS client of the inbound checks.
func (s *server) inboundResolver() (*dnsclient.Resolver, error) {
	addr := s.cfg.InboundDNS.Resolver
	if addr == "" {
		addr = s.cfg.Queue.Resolver
	}
	return dnsclient.New(addr, s.cfg.InboundDNS.Timeout)
}

// openInbound builds the RCPT screens (dnsbl, greylisting) and the
// sender authentication checker from the configuration; each is nil
// when off.
func (s *server) openInbound(ctx context.Context) error {
	cfg := s.cfg
	zones, err := parseZones(cfg.DNSBL.Zones)
	if err != nil {
		return fmt.Errorf("dnsbl.zones: %w", err)
	}
	if len(zones) == 0 && !cfg.SenderAuth.Enabled && !cfg.Greylist.Enabled {
		return nil
	}
	var r *dnsclient.Resolver
	if len(zones) > 0 || cfg.SenderAuth.Enabled {
		if r, err = s.inboundResolver(); err != nil {
			return err
		}
	}
	if len(zones) > 0 {
		allow, err := parsePrefixes(cfg.DNSBL.Allow)
		if err != nil {
			return fmt.Errorf("dnsbl.allow: %w", err)
		}
		s.screens = append(s.screens, &dnsbl.Checker{
			Resolver: r, Zones: zones, Threshold: cfg.DNSBL.Threshold, Allow: allow, CacheTTL: cfg.DNSBL.CacheTTL,
		})
	}
	if cfg.Greylist.Enabled {
		allow, err := parsePrefixes(cfg.Greylist.AllowNetworks)
		if err != nil {
			return fmt.Errorf("greylist.allow_networks: %w", err)
		}
		s.greylist = &greylist.Greylister{
			Store: greylist.Directory{DB: s.dir.sql},
			Delay: cfg.Greylist.Delay, RetryMax: cfg.Greylist.RetryMax, Remember: cfg.Greylist.Remember,
			Networks:      gate.Networks{IPv4Prefix: cfg.Greylist.IPv4Prefix, IPv6Prefix: cfg.Greylist.IPv6Prefix},
			AllowNetworks: allow, AllowDomains: cfg.Greylist.AllowDomains,
			Logger: s.log.With("component", "greylist"),
		}
		s.screens = append(s.screens, s.greylist)
		// Not in s.wg: it holds no work shutdown must wait for, and
		// ends with the serve context.
		go s.expireGreylist(ctx)
	}
	if cfg.SenderAuth.Enabled {
		dmarcReject, _ := senderauth.ParseAction(cfg.SenderAuth.DMARCReject)
		spfFail, _ := senderauth.ParseAction(cfg.SenderAuth.SPFFail)
		s.senderAuth = &senderauth.Checker{
			Resolver: r, AuthServID: cfg.Hostname, DMARCReject: dmarcReject, SPFFail: spfFail,
			MaxSignatures: cfg.SenderAuth.MaxSignatures,
		}
	}
	return nil
}

// inboundSteps are the end-of-DATA checks of this package's keys, to run
// first: later checks (scanners) see the Authentication-Results field.
// DNS trouble is a temperror in the field, never a failed step, so the
// step's failure mode only meets a timeout: the message is then accepted
// unmarked by sender authentication rather than held.
func (s *server) inboundSteps() []inbound.Step {
	if s.senderAuth == nil {
		return nil
	}
	return []inbound.Step{{Check: s.senderAuth, OnFailure: inbound.FailAccept}}
}

// greylistExpiry is how often forgotten triplets are deleted.
const greylistExpiry = time.Hour

// expireGreylist deletes old triplets every hour until ctx ends, so the
// table holds only what greylisting can still use.
func (s *server) expireGreylist(ctx context.Context) {
	t := time.NewTicker(greylistExpiry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := s.greylist.Expire(ctx); err != nil {
			s.log.Warn("greylist expiry failed", "err", err)
		} else if n > 0 {
			s.log.Info("greylist expired", "triplets", n)
		}
	}
}

// mtaScreens are the RCPT screens of a listener: only the MTA has them.
func (s *server) mtaScreens(role smtp.Role) []smtp.Screen {
	if role != smtp.RoleMTA {
		return nil
	}
	return s.screens
}
