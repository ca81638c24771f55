package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmaild/vmaild/backend/dnsclient"
	"github.com/vmaild/vmaild/protocols/dnsrecords"
	"github.com/vmaild/vmaild/userdb"
)

// DNSConfig is what `vmaild dns` publishes for a hosted domain beyond
// what the listeners, the hostname and the DKIM keys say. "%d" in a value
// stands for the domain.
type DNSConfig struct {
	SPF    string `yaml:"spf" help:"SPF record of a hosted domain (with queue.smarthost, name the relay's addresses or include: instead of mx); vmaild dns check wants exactly these terms"`
	DMARC  string `yaml:"dmarc" help:"DMARC record (_dmarc.DOMAIN), %d: the domain; vmaild dns check wants these tags, others may be added"`
	TLSRPT string `yaml:"tls_rpt" help:"TLS-RPT record (_smtp._tls.DOMAIN, RFC 8460), %d: the domain; empty: none"`
}

// defaultDNS: SPF by the MX (this server), DMARC quarantining what fails
// (p=none protects nothing, reject is the admin's call once reports are
// clean), MTA-STS in testing mode until the admin has seen the reports.
func defaultDNS() DNSConfig {
	return DNSConfig{
		SPF:    "v=spf1 mx ~all",
		DMARC:  "v=DMARC1; p=quarantine; rua=mailto:postmaster@%d",
		TLSRPT: "v=TLSRPTv1; rua=mailto:postmaster@%d",
	}
}

func (c DNSConfig) validate() []string {
	var problems []string
	if !strings.HasPrefix(strings.ToLower(c.SPF), "v=spf1") {
		problems = append(problems, fmt.Sprintf("dns.spf: %q does not start with v=spf1", c.SPF))
	}
	if !strings.HasPrefix(strings.ToLower(c.DMARC), "v=dmarc1") {
		problems = append(problems, fmt.Sprintf("dns.dmarc: %q does not start with v=DMARC1", c.DMARC))
	}
	if c.TLSRPT != "" && !strings.HasPrefix(strings.ToLower(c.TLSRPT), "v=tlsrptv1") {
		problems = append(problems, fmt.Sprintf("dns.tls_rpt: %q does not start with v=TLSRPTv1", c.TLSRPT))
	}
	return problems
}

// dnsSettings gathers what the records of domain are computed from: the
// hostname, the listeners clients are told about, the DKIM keys and the
// dns section. warnings are DKIM key files others may read.
func (c *Config) dnsSettings(domain string) (dnsrecords.Settings, []error, error) {
	keys, warnings, err := c.DKIM.records(domain)
	if err != nil {
		return dnsrecords.Settings{}, nil, err
	}
	s := dnsrecords.Settings{
		Domain: domain, Hostname: c.Hostname, Clients: c.autoconfigSettings(), DKIM: keys,
		SPF: c.DNS.SPF, DMARC: c.DNS.DMARC, TLSRPT: c.DNS.TLSRPT,
	}
	if c.MTASTS.Mode != "" {
		p := c.MTASTS.policy(c.Hostname)
		s.MTASTS = &p
	}
	return s, warnings, nil
}

type dnsAnswer struct {
	Domain  string              `json:"domain"`
	Records []dnsrecords.Record `json:"records"`
	// MTASTSPolicy is the policy file to serve at
	// https://mta-sts.DOMAIN/.well-known/mta-sts.txt.
	MTASTSPolicy string `json:"mta_sts_policy,omitempty"`
}

type dnsCheckAnswer struct {
	Domain   string              `json:"domain"`
	Resolver string              `json:"resolver"`
	Results  []dnsrecords.Result `json:"results"`
	Failed   int                 `json:"failed"`
}

// dnsCheckFailed is the error of a check that found records missing or
// wrong: exit status 1, after the report.
type dnsCheckFailed struct{ n int }

func (e dnsCheckFailed) Error() string {
	return fmt.Sprintf("%d records missing, wrong or not looked up", e.n)
}

func (a *app) dnsCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "dns DOMAIN",
		Short: "Print the DNS records a hosted domain needs (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, autoconfig, SRV)",
		Long: "Computes the records from the configuration: hostname (the MX), the listeners (the SRV\n" +
			"records, as autoconfig announces them), the DKIM keys (vmaild dkim show) and dns.*.\n" +
			"`vmaild dns check DOMAIN` looks them up and says which are missing or wrong.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			domain, err := userdb.CanonicalDomain(args[0])
			if err != nil {
				return usageError{fmt.Sprintf("dns: %q is not a domain", args[0])}
			}
			s, warnings, err := a.cfg.dnsSettings(domain)
			if err != nil {
				return err
			}
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			ans := dnsAnswer{Domain: domain, Records: dnsrecords.Expected(s), MTASTSPolicy: dnsrecords.Policy(s)}
			if len(s.DKIM) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: no DKIM key for %s: make one with `vmaild dkim keygen %s`\n", domain, domain)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), ans)
			}
			return printZone(cmd.OutOrStdout(), ans)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")

	var checkJSON bool
	var resolver string
	check := &cobra.Command{
		Use:   "check DOMAIN",
		Short: "Look up the records of DOMAIN through the resolver and say which are missing or wrong",
		Long: "Asks queue.resolver (else resolv.conf's) for every record `vmaild dns\n" +
			"DOMAIN` prints. ok: as expected; missing: not there; wrong: there but not what is\n" +
			"expected (found and expected are shown); error: the lookup failed. Exits 1 unless every\n" +
			"record is ok.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			domain, err := userdb.CanonicalDomain(args[0])
			if err != nil {
				return usageError{fmt.Sprintf("dns check: %q is not a domain", args[0])}
			}
			s, _, err := a.cfg.dnsSettings(domain)
			if err != nil {
				return err
			}
			if resolver == "" {
				// The resolver outbound mail asks: what the world's MTAs
				// see, short of caches.
				resolver = a.cfg.Queue.Resolver
			}
			r, err := dnsclient.New(resolver, a.cfg.InboundDNS.Timeout)
			if err != nil {
				return err
			}
			results := dnsrecords.Check(cmd.Context(), r, dnsrecords.Expected(s))
			ans := dnsCheckAnswer{Domain: domain, Resolver: resolver, Results: results, Failed: dnsrecords.Failed(results)}
			if ans.Resolver == "" {
				ans.Resolver = "resolv.conf"
			}
			out := cmd.OutOrStdout()
			if checkJSON {
				if err := printJSON(out, ans); err != nil {
					return err
				}
			} else if err := printCheck(out, ans); err != nil {
				return err
			}
			if ans.Failed > 0 {
				return dnsCheckFailed{ans.Failed}
			}
			return nil
		},
	}
	check.Flags().BoolVar(&checkJSON, "json", false, "print one JSON object")
	check.Flags().StringVar(&resolver, "resolver", "", "DNS server host:port to ask (default queue.resolver)")
	cmd.AddCommand(check)
	return cmd
}

// printZone writes the records as a zone file an admin pastes, each
// preceded by what it is for, then the MTA-STS policy file.
func printZone(w io.Writer, ans dnsAnswer) error {
	fmt.Fprintf(w, "; DNS records of %s\n", ans.Domain)
	last := ""
	for _, r := range ans.Records {
		if r.Kind != last {
			fmt.Fprintf(w, "; %s\n", r.Kind)
			last = r.Kind
		}
		fmt.Fprintln(w, r.ZoneLine())
	}
	if ans.MTASTSPolicy != "" {
		fmt.Fprintf(w, "; MTA-STS policy, served at https://mta-sts.%s/.well-known/mta-sts.txt:\n", ans.Domain)
		for _, l := range strings.Split(strings.TrimRight(ans.MTASTSPolicy, "\r\n"), "\r\n") {
			fmt.Fprintf(w, ";   %s\n", l)
		}
	}
	_, err := fmt.Fprintln(w)
	return err
}

func printCheck(w io.Writer, ans dnsCheckAnswer) error {
	t := table(w)
	fmt.Fprintln(t, "STATUS\tRECORD\tNAME\tEXPECTED\tFOUND")
	for _, r := range ans.Results {
		found := strings.Join(r.Found, " | ")
		if r.Note != "" {
			found = strings.TrimSpace(found + " (" + r.Note + ")")
		}
		if r.Status == dnsrecords.StatusOK && r.Note == "" {
			found = ""
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s %s\t%s\n", r.Status, strings.TrimSpace(r.Kind+" "+r.Label), r.Name, r.Type, r.Value, found)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if ans.Failed == 0 {
		_, err := fmt.Fprintf(w, "all %d records of %s are in place (resolver %s)\n", len(ans.Results), ans.Domain, ans.Resolver)
		return err
	}
	_, err := fmt.Fprintf(w, "%d of %d records of %s missing or wrong (resolver %s)\n", ans.Failed, len(ans.Results), ans.Domain, ans.Resolver)
	return err
}
