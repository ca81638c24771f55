package dnsrecords

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/dnsclient"
	"github.com/vmaild/vmaild/backend/mtasts"
	"github.com/vmaild/vmaild/backend/queue/queuetest"
	"github.com/vmaild/vmaild/protocols/autoconfig"
)

func testSettings() Settings {
	return Settings{
		Domain:   "example.com",
		Hostname: "mx.example.net",
		Clients: autoconfig.Settings{Hostname: "mail.example.net", Services: []autoconfig.Service{
			{Protocol: "imap", Port: 993, ImplicitTLS: true},
			{Protocol: "imap", Port: 143},
			{Protocol: "smtp", Port: 465, ImplicitTLS: true},
			{Protocol: "smtp", Port: 587},
			{Protocol: "pop3", Port: 995, ImplicitTLS: true},
		}},
		DKIM: []DKIMKey{
			{Selector: "s202612", Record: "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
			{Selector: "r202612", Record: "v=DKIM1; k=rsa; p=" + strings.Repeat("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", 9)},
		},
		SPF:    "v=spf1 mx ~all",
		DMARC:  "v=DMARC1; p=quarantine; rua=mailto:postmaster@%d",
		TLSRPT: "v=TLSRPTv1; rua=mailto:postmaster@%d",
		MTASTS: &mtasts.Policy{Mode: mtasts.Enforce, MX: []string{"mx.example.net"}, MaxAge: 7 * 24 * time.Hour},
	}
}

func TestExpected(t *testing.T) {
	var lines []string
	for _, r := range Expected(testSettings()) {
		lines = append(lines, r.ZoneLine())
	}
	got := strings.Join(lines, "\n")
	policy := Policy(testSettings())
	for _, want := range []string{
		"example.com. 3600 IN MX 10 mx.example.net.",
		`example.com. 3600 IN TXT "v=spf1 mx ~all"`,
		`s202612._domainkey.example.com. 3600 IN TXT "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="`,
		`_dmarc.example.com. 3600 IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.com"`,
		`_mta-sts.example.com. 3600 IN TXT "v=STSv1; id=` + PolicyID(policy) + `"`,
		"mta-sts.example.com. 3600 IN CNAME mx.example.net.",
		`_smtp._tls.example.com. 3600 IN TXT "v=TLSRPTv1; rua=mailto:postmaster@example.com"`,
		"autoconfig.example.com. 3600 IN CNAME mail.example.net.",
		"autodiscover.example.com. 3600 IN CNAME mail.example.net.",
		"_submissions._tcp.example.com. 3600 IN SRV 10 1 465 mail.example.net.",
		"_submission._tcp.example.com. 3600 IN SRV 15 1 587 mail.example.net.",
		"_imaps._tcp.example.com. 3600 IN SRV 10 1 993 mail.example.net.",
		"_imap._tcp.example.com. 3600 IN SRV 15 1 143 mail.example.net.",
		"_pop3s._tcp.example.com. 3600 IN SRV 20 1 995 mail.example.net.",
		"_pop3._tcp.example.com. 3600 IN SRV 0 0 0 .",
	} {
		if !strings.Contains(got, want+"\n") && !strings.HasSuffix(got, want) {
			t.Errorf("no line %q in\n%s", want, got)
		}
	}
	// The RSA key's record is cut into DNS strings.
	if !strings.Contains(got, `r202612._domainkey.example.com. 3600 IN TXT "v=DKIM1; k=rsa; p=MIIB`) || !strings.Contains(got, `" "`) {
		t.Errorf("long TXT not split:\n%s", got)
	}
	if want := "version: STSv1\r\nmode: enforce\r\nmx: mx.example.net\r\nmax_age: 604800\r\n"; policy != want {
		t.Errorf("policy %q, want %q", policy, want)
	}
	s := testSettings()
	s.MTASTS = &mtasts.Policy{Mode: mtasts.Testing, MX: []string{"mx.example.net"}, MaxAge: 7 * 24 * time.Hour}
	if PolicyID(Policy(s)) == PolicyID(policy) {
		t.Error("the policy id does not change with the policy")
	}
}

// publish puts records into the test DNS server, as an admin would from
// `vmaild dns`.
func publish(t *testing.T, d *queuetest.DNS, recs []Record) {
	t.Helper()
	for _, r := range recs {
		f := strings.Fields(r.Value)
		num := func(s string) uint16 {
			n, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("%s: %v", r.ZoneLine(), err)
			}
			return uint16(n)
		}
		switch r.Type {
		case "MX":
			d.MX(r.Name, num(f[0]), f[1])
		case "TXT":
			d.TXT(r.Name, r.Value)
		case "CNAME":
			d.CNAME(r.Name, r.Value)
		case "SRV":
			d.SRV(r.Name, num(f[0]), num(f[1]), num(f[2]), f[3])
		default:
			t.Fatalf("cannot publish %s", r.ZoneLine())
		}
	}
}

// key names a record in the table below: its kind and label.
func key(r Record) string { return strings.TrimSpace(r.Kind + " " + r.Label) }

// edit returns recs with the record named k changed (nil: left out).
func edit(recs []Record, k string, change func(r Record) *Record) []Record {
	var out []Record
	for _, r := range recs {
		if key(r) == k {
			if c := change(r); c != nil {
				out = append(out, *c)
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

func drop(r Record) *Record { return nil }

func value(v string) func(Record) *Record {
	return func(r Record) *Record { r.Value = v; return &r }
}

func TestCheck(t *testing.T) {
	expected := Expected(testSettings())
	for _, tc := range []struct {
		name string
		// zone is what is published; extra adds to it.
		zone  func([]Record) []Record
		extra func(d *queuetest.DNS)
		// want are the records that are not ok, by key, with their
		// status; every other one must be ok.
		want map[string]string
	}{
		{name: "complete zone"},
		{name: "no MX", zone: func(r []Record) []Record { return edit(r, "MX", drop) },
			want: map[string]string{"MX": StatusMissing}},
		{name: "MX elsewhere", zone: func(r []Record) []Record { return edit(r, "MX", value("10 mx.other.test.")) },
			want: map[string]string{"MX": StatusWrong}},
		{name: "a backup MX beside ours", extra: func(d *queuetest.DNS) { d.MX("example.com", 20, "backup.other.test") }},
		{name: "no SPF, another TXT at the domain",
			zone:  func(r []Record) []Record { return edit(r, "SPF", drop) },
			extra: func(d *queuetest.DNS) { d.TXT("example.com", "google-site-verification=abc") },
			want:  map[string]string{"SPF": StatusMissing}},
		{name: "two SPF records", extra: func(d *queuetest.DNS) { d.TXT("example.com", "v=spf1 a -all") },
			want: map[string]string{"SPF": StatusWrong}},
		{name: "SPF of another policy", zone: func(r []Record) []Record { return edit(r, "SPF", value("v=spf1 a -all")) },
			want: map[string]string{"SPF": StatusWrong}},
		{name: "SPF terms in another order and case", zone: func(r []Record) []Record { return edit(r, "SPF", value("v=spf1  ~ALL mx")) }},
		{name: "DKIM key missing", zone: func(r []Record) []Record { return edit(r, "DKIM s202612", drop) },
			want: map[string]string{"DKIM s202612": StatusMissing}},
		{name: "DKIM key of an old key", zone: func(r []Record) []Record {
			return edit(r, "DKIM r202612", value("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAold"))
		}, want: map[string]string{"DKIM r202612": StatusWrong}},
		{name: "DMARC p=none", zone: func(r []Record) []Record {
			return edit(r, "DMARC", value("v=DMARC1; p=none; rua=mailto:postmaster@example.com"))
		}, want: map[string]string{"DMARC": StatusWrong}},
		{name: "DMARC with more tags", zone: func(r []Record) []Record {
			return edit(r, "DMARC", value("v=DMARC1; p=quarantine; pct=100; rua=mailto:postmaster@example.com; fo=1"))
		}},
		{name: "no DMARC", zone: func(r []Record) []Record { return edit(r, "DMARC", drop) },
			want: map[string]string{"DMARC": StatusMissing}},
		{name: "MTA-STS without id", zone: func(r []Record) []Record { return edit(r, "MTA-STS", value("v=STSv1;")) },
			want: map[string]string{"MTA-STS": StatusWrong}},
		{name: "MTA-STS with an id of the admin's", zone: func(r []Record) []Record { return edit(r, "MTA-STS", value("v=STSv1; id=20261203")) }},
		{name: "mta-sts host missing", zone: func(r []Record) []Record { return edit(r, "MTA-STS host", drop) },
			want: map[string]string{"MTA-STS host": StatusMissing}},
		{name: "mta-sts host by address records",
			zone: func(r []Record) []Record { return edit(r, "MTA-STS host", drop) },
			extra: func(d *queuetest.DNS) {
				d.A("mx.example.net", "192.0.2.25")
				d.A("mta-sts.example.com", "192.0.2.25")
			}},
		{name: "mta-sts host on another address",
			zone: func(r []Record) []Record { return edit(r, "MTA-STS host", drop) },
			extra: func(d *queuetest.DNS) {
				d.A("mx.example.net", "192.0.2.25")
				d.A("mta-sts.example.com", "198.51.100.1")
			},
			want: map[string]string{"MTA-STS host": StatusWrong}},
		{name: "no TLS-RPT", zone: func(r []Record) []Record { return edit(r, "TLS-RPT", drop) },
			want: map[string]string{"TLS-RPT": StatusMissing}},
		{name: "autoconfig elsewhere", zone: func(r []Record) []Record { return edit(r, "autoconfig", value("old-webmail.example.com.")) },
			want: map[string]string{"autoconfig": StatusWrong}},
		{name: "no autodiscover", zone: func(r []Record) []Record { return edit(r, "autodiscover", drop) },
			want: map[string]string{"autodiscover": StatusMissing}},
		{name: "submission SRV on the wrong port", zone: func(r []Record) []Record {
			return edit(r, "SRV _submission._tcp", value("15 1 25 mail.example.net."))
		}, want: map[string]string{"SRV _submission._tcp": StatusWrong}},
		{name: "SRV with other priorities", zone: func(r []Record) []Record {
			return edit(r, "SRV _imaps._tcp", value("0 0 993 mail.example.net."))
		}},
		{name: "SRV records missing", zone: func(r []Record) []Record {
			return edit(edit(r, "SRV _imaps._tcp", drop), "SRV _pop3._tcp", drop)
		}, want: map[string]string{"SRV _imaps._tcp": StatusMissing, "SRV _pop3._tcp": StatusMissing}},
		{name: "resolver fails for one name", extra: func(d *queuetest.DNS) { d.ServFail("_dmarc.example.com", true) },
			want: map[string]string{"DMARC": StatusError}},
		{name: "nothing published", zone: func([]Record) []Record { return nil },
			want: func() map[string]string {
				m := map[string]string{}
				for _, r := range expected {
					m[key(r)] = StatusMissing
				}
				return m
			}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := queuetest.NewDNS(t)
			zone := expected
			if tc.zone != nil {
				zone = tc.zone(expected)
			}
			publish(t, d, zone)
			if tc.extra != nil {
				tc.extra(d)
			}
			r, err := dnsclient.New(d.Addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			results := Check(context.Background(), r, expected)
			if len(results) != len(expected) {
				t.Fatalf("%d results for %d records", len(results), len(expected))
			}
			for _, r := range results {
				want := tc.want[key(r.Record)]
				if want == "" {
					want = StatusOK
				}
				if r.Status != want {
					t.Errorf("%s (%s): %s, want %s; found %q; %s", key(r.Record), r.Name, r.Status, want, r.Found, r.Note)
				}
			}
			if n := Failed(results); n != len(tc.want) {
				t.Errorf("Failed = %d, want %d", n, len(tc.want))
			}
		})
	}
}
