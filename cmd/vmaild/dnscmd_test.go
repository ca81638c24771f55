package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
	"github.com/vmaild/vmaild/protocols/dnsrecords"
)

// publishZone puts records into the test's DNS server, as the admin
// would from `vmaild dns`, leaving out the one named skip and changing
// the value of the one named wrong.
func publishZone(t *testing.T, d *queuetest.DNS, recs []dnsrecords.Record, skip, wrong string) {
	t.Helper()
	for _, r := range recs {
		k := strings.TrimSpace(r.Kind + " " + r.Label)
		if k == skip {
			continue
		}
		f := strings.Fields(r.Value)
		num := func(s string) uint16 { n, _ := strconv.Atoi(s); return uint16(n) }
		switch r.Type {
		case "MX":
			if k == wrong {
				f[1] = "mx.elsewhere.test."
			}
			d.MX(r.Name, num(f[0]), f[1])
		case "TXT":
			v := r.Value
			if k == wrong {
				v = strings.Replace(strings.Replace(strings.Replace(v, "mx", "a", 1), "p=", "p=AAAA", 1), "quarantine", "none", 1)
				v = strings.Replace(v, "id=", "id=-", 1)
				v = strings.Replace(v, "postmaster", "nobody", 1)
			}
			d.TXT(r.Name, v)
		case "CNAME":
			if k == wrong {
				d.CNAME(r.Name, "elsewhere.test.")
				continue
			}
			d.CNAME(r.Name, r.Value)
		case "SRV":
			if k == wrong {
				f[2] = "2525"
			}
			d.SRV(r.Name, num(f[0]), num(f[1]), num(f[2]), f[3])
		}
	}
}

// TestDNSCommands: `vmaild dns` prints the records from the configuration
// (hostname, listeners, DKIM keys), and `vmaild dns check` against the
// loopback DNS server passes a complete zone and names each record that is
// missing or wrong, exiting non-zero.
func TestDNSCommands(t *testing.T) {
	dns := queuetest.NewDNS(t)
	dir := t.TempDir()
	c := newCLI(t, fmt.Sprintf(`hostname: mx.example.net
data_dir: %s
queue:
  resolver: %s
listen:
  submission: {address: "127.0.0.1:5587", public_port: 587}
  submissions: {address: "127.0.0.1:5465", public_port: 465}
  imaps: {address: "127.0.0.1:1993", public_port: 993}
  imap: {address: ""}
  pop3: {address: ""}
  pop3s: {address: "127.0.0.1:1995", public_port: 995}
mta_sts:
  mode: enforce
`, filepath.Join(dir, "data"), dns.Addr))
	c.ok("", "dkim", "keygen", "example.com", "--selector", "s1")
	c.ok("", "dkim", "keygen", "example.com", "--selector", "r1", "--algorithm", "rsa")

	zone := c.ok("", "dns", "example.com")
	show := c.ok("", "dkim", "show", "example.com")
	for _, want := range append(strings.Split(strings.TrimSpace(strings.ReplaceAll(show, ". IN TXT", ". 3600 IN TXT")), "\n"),
		"example.com. 3600 IN MX 10 mx.example.net.",
		`example.com. 3600 IN TXT "v=spf1 mx ~all"`,
		`_dmarc.example.com. 3600 IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.com"`,
		"_submission._tcp.example.com. 3600 IN SRV 15 1 587 mx.example.net.",
		"_submissions._tcp.example.com. 3600 IN SRV 10 1 465 mx.example.net.",
		"_imaps._tcp.example.com. 3600 IN SRV 10 1 993 mx.example.net.",
		"_imap._tcp.example.com. 3600 IN SRV 0 0 0 .",
		"_pop3s._tcp.example.com. 3600 IN SRV 20 1 995 mx.example.net.",
		"autoconfig.example.com. 3600 IN CNAME mx.example.net.",
		"autodiscover.example.com. 3600 IN CNAME mx.example.net.",
		"mta-sts.example.com. 3600 IN CNAME mx.example.net.",
		`_smtp._tls.example.com. 3600 IN TXT "v=TLSRPTv1; rua=mailto:postmaster@example.com"`,
		";   mode: enforce",
		";   mx: mx.example.net",
	) {
		if !strings.Contains(zone, want+"\n") {
			t.Errorf("vmaild dns lacks %q:\n%s", want, zone)
		}
	}
	var ans dnsAnswer
	if err := json.Unmarshal([]byte(c.ok("", "dns", "example.com", "--json")), &ans); err != nil {
		t.Fatal(err)
	}
	if len(ans.Records) != strings.Count(zone, " 3600 IN ") || !strings.Contains(ans.MTASTSPolicy, "mode: enforce\r\n") {
		t.Fatalf("--json: %d records (%d lines printed), policy %q", len(ans.Records), strings.Count(zone, " 3600 IN "), ans.MTASTSPolicy)
	}

	publishZone(t, dns, ans.Records, "", "")
	if out := c.ok("", "dns", "check", "example.com"); !strings.Contains(out, fmt.Sprintf("all %d records of example.com are in place", len(ans.Records))) {
		t.Errorf("complete zone:\n%s", out)
	}

	type broken struct{ key, status string }
	var cases []broken
	for _, r := range ans.Records {
		k := strings.TrimSpace(r.Kind + " " + r.Label)
		cases = append(cases, broken{k, dnsrecords.StatusMissing}, broken{k, dnsrecords.StatusWrong})
	}
	for _, tc := range cases {
		t.Run(tc.status+" "+tc.key, func(t *testing.T) {
			d := queuetest.NewDNS(t)
			if tc.status == dnsrecords.StatusMissing {
				publishZone(t, d, ans.Records, tc.key, "")
			} else {
				publishZone(t, d, ans.Records, "", tc.key)
			}
			out, _, err := c.run("", "dns", "check", "example.com", "--resolver", d.Addr)
			var failed dnsCheckFailed
			if !errors.As(err, &failed) || failed.n != 1 {
				t.Fatalf("dns check: %v, want one record failed\n%s", err, out)
			}
			var bad []string
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); len(f) > 0 && f[0] != "ok" && f[0] != "STATUS" && !strings.HasPrefix(l, "1 of ") && l != "" {
					bad = append(bad, l)
				}
			}
			if len(bad) != 1 || !strings.HasPrefix(bad[0], tc.status+" ") || !strings.Contains(bad[0], " "+tc.key+" ") {
				t.Errorf("want one line %q naming %s, got:\n%s", tc.status, tc.key, out)
			}
			var j dnsCheckAnswer
			jout, _, _ := c.run("", "dns", "check", "example.com", "--resolver", d.Addr, "--json")
			if err := json.Unmarshal([]byte(jout), &j); err != nil || j.Failed != 1 {
				t.Errorf("--json: %v, failed %d\n%s", err, j.Failed, jout)
			}
		})
	}
}
