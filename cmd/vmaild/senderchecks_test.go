package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
	"github.com/vmaild/vmaild/protocols/smtp/smtpbench"
	sqldir "github.com/vmaild/vmaild/userdb/sql"
)

// TestServeInboundChecks: the keys of inbound.go take effect in a running
// daemon whose DNS is a loopback server: sender authentication adds its
// field and refuses DMARC p=reject failures, greylisting defers a new
// triplet (kept in the SQLite directory's greylist table), and a client
// listed in a blocklist is refused naming the zone.
func TestServeInboundChecks(t *testing.T) {
	dns := queuetest.NewDNS(t)
	dns.TXT("pass.test", "v=spf1 ip4:127.0.0.1 -all")
	dns.TXT("_dmarc.pass.test", "v=DMARC1; p=reject")
	dns.TXT("reject.test", "v=spf1 -all")
	dns.TXT("_dmarc.reject.test", "v=DMARC1; p=reject")
	d := newDaemon(t, fmt.Sprintf(`smtp:
  mynetworks: []
inbound_dns:
  resolver: %s
sender_auth:
  enabled: true
dnsbl:
  zones: ["bl.test:1:127.0.0.2"]
  cache_ttl: 1ns
greylist:
  enabled: true
  allow_domains: [pass.test, reject.test]
`, dns.Addr))
	d.start()
	d.cli("", "domain", "add", "example.com")
	d.cli("alice-secret\n", "user", "add", "alice@example.com", "--password-stdin")
	msg := func(from string) string {
		return "From: <" + from + ">\r\nTo: <alice@example.com>\r\nSubject: inbound\r\n\r\nhello\r\n"
	}
	to := []string{"alice@example.com"}

	if err := sendMail(t, d.addr("smtp"), nil, "a@pass.test", to, msg("a@pass.test")); err != nil {
		t.Fatalf("spf pass: %v", err)
	}
	err := sendMail(t, d.addr("smtp"), nil, "a@reject.test", to, msg("a@reject.test"))
	if err == nil || !strings.Contains(err.Error(), "550") || !strings.Contains(err.Error(), "DMARC policy of reject.test") {
		t.Errorf("dmarc reject: %v", err)
	}
	err = sendMail(t, d.addr("smtp"), nil, "a@new.test", to, msg("a@new.test"))
	if err == nil || !strings.Contains(err.Error(), "451") || !strings.Contains(err.Error(), "Greylisted") {
		t.Errorf("greylisting: %v", err)
	}
	dns.A("1.0.0.127.bl.test", "127.0.0.2")
	err = sendMail(t, d.addr("smtp"), nil, "a@pass.test", to, msg("a@pass.test"))
	if err == nil || !strings.Contains(err.Error(), "554") || !strings.Contains(err.Error(), "blocked using bl.test") {
		t.Errorf("dnsbl: %v", err)
	}

	metrics := httpGet(t, "http://"+d.addr("metrics")+"/metrics")
	for _, want := range []string{
		`vmaild_screen_results_total{result="defer",screen="greylist"} 1`,
		`vmaild_screen_results_total{result="refuse",screen="dnsbl"} 1`,
		`vmaild_screen_results_total{result="pass",screen="dnsbl"} 3`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	msgs := pop3Retrieve(t, d.addr("pop3"), "alice@example.com", "alice-secret")
	if len(msgs) != 1 {
		t.Fatalf("mailbox holds %d messages, want 1", len(msgs))
	}
	for _, want := range []string{"Authentication-Results: mx.example.com;", "spf=pass smtp.mailfrom=a@pass.test", "dmarc=pass header.from=pass.test"} {
		if !strings.Contains(msgs[0], want) {
			t.Errorf("delivered message lacks %q:\n%s", want, msgs[0])
		}
	}
	db, err := sqldir.Open(context.Background(), sqldir.Config{Driver: "sqlite", DSN: filepath.Join(filepath.Dir(d.config), "data", "vmaild.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e, found, err := db.GreylistGet(context.Background(), "127.0.0.0/24", "a@new.test", "alice@example.com")
	if err != nil || !found || e.Passed {
		t.Errorf("greylist row: %+v found=%v %v", e, found, err)
	}
}

// TestInboundConfig: malformed inbound keys are refused when read, each
// naming its key.
func TestInboundConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(c *Config)
		want string // "" accepted
	}{
		{"defaults", func(c *Config) {}, ""},
		{"zones", func(c *Config) {
			c.DNSBL.Zones = []string{"zen.spamhaus.org:1:127.0.0.2-127.0.0.9,127.0.0.10", "list.dnswl.org:-5", "bl.test"}
		}, ""},
		{"zone without name", func(c *Config) { c.DNSBL.Zones = []string{":1"} }, "dnsbl.zones"},
		{"zone weight", func(c *Config) { c.DNSBL.Zones = []string{"bl.test:heavy"} }, "dnsbl.zones"},
		{"zone zero weight", func(c *Config) { c.DNSBL.Zones = []string{"bl.test:0"} }, "dnsbl.zones"},
		{"zone codes", func(c *Config) { c.DNSBL.Zones = []string{"bl.test:1:127.0.0.9-127.0.0.2"} }, "dnsbl.zones"},
		{"threshold", func(c *Config) { c.DNSBL.Threshold = 0 }, "dnsbl.threshold"},
		{"dnsbl allow", func(c *Config) { c.DNSBL.Allow = []string{"10.0.0.0/33"} }, "dnsbl.allow"},
		{"greylist allow", func(c *Config) { c.Greylist.AllowNetworks = []string{"x"} }, "greylist.allow_networks"},
		{"greylist prefix", func(c *Config) { c.Greylist.IPv4Prefix = 33 }, "greylist.ipv4_prefix"},
		{"dmarc action", func(c *Config) { c.SenderAuth.DMARCReject = "bounce" }, "sender_auth.dmarc_reject"},
		{"spf action", func(c *Config) { c.SenderAuth.SPFFail = "drop" }, "sender_auth.spf_fail"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig()
			tc.set(&c)
			problems := strings.Join(c.validateSenderChecks(), "\n")
			if tc.want == "" && problems != "" || tc.want != "" && !strings.Contains(problems, tc.want) {
				t.Errorf("problems %q, want %q", problems, tc.want)
			}
		})
	}
}

// BenchmarkServeSenderAuth: 10 KB messages through the running daemon's
// MTA port into Maildir (SQLite directory), without sender
// authentication and with it (SPF pass, DMARC pass by alignment, no
// signature: two TXT questions and the DMARC one to the loopback DNS
// server per message). The figure to read is msgs/s.
func BenchmarkServeSenderAuth(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "spf+dkim+dmarc"
		}
		b.Run(name, func(b *testing.B) {
			dns := queuetest.NewDNS(b)
			dns.TXT("pass.test", "v=spf1 ip4:127.0.0.1 -all")
			dns.TXT("_dmarc.pass.test", "v=DMARC1; p=reject")
			d := newDaemon(b, fmt.Sprintf("smtp:\n  mynetworks: []\ninbound_dns:\n  resolver: %s\nsender_auth:\n  enabled: %v\n", dns.Addr, on))
			d.start()
			d.cli("", "domain", "add", "example.com")
			d.cli("secret\n", "user", "add", "u1@example.com", "--password-stdin")
			b.ResetTimer()
			res, err := smtpbench.Run(context.Background(), smtpbench.Options{
				Addr: d.addr("smtp"), From: "bench@pass.test", To: []string{"u1@example.com"},
				Count: b.N, Concurrency: 8, Size: 10240,
			})
			b.StopTimer()
			if err != nil || res.Errors > 0 {
				b.Fatalf("bench: %v, %d errors, first %v", err, res.Errors, res.FirstError)
			}
			b.ReportMetric(res.PerSecond, "msgs/s")
			b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms")
			d.stop()
		})
	}
}
