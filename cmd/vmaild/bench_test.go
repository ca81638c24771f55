package main

import (
	"context"
	"testing"

	"github.com/vmaild/vmaild/internal/testscan"
	"github.com/vmaild/vmaild/protocols/smtp/smtpbench"
)

// BenchmarkServeSMTP: 10 KB messages to local users through the running
// daemon (MTA port, delivery agent, Maildir with fsync), with the SQLite
// directory and with LDAP + MariaDB. The figure to read is msgs/s.
func BenchmarkServeSMTP(b *testing.B) {
	for _, name := range []string{"embedded", "ldap+mariadb"} {
		b.Run(name, func(b *testing.B) {
			d := newDaemon(b, e2eBackends[name](b))
			if name != "embedded" {
				d.cli("", "db", "migrate")
			}
			d.start()
			d.cli("", "domain", "add", "example.com")
			d.cli("", "ldif", "import", "--add-domains", "../../ldif/example.ldif")
			var rcpts []string
			for _, u := range []string{"u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"} {
				d.cli("secret-"+u+"\n", "user", "add", u+"@example.com", "--password-stdin")
				rcpts = append(rcpts, u+"@example.com")
			}
			b.ResetTimer()
			var total smtpbench.Result
			sent := 0
			for i := range rcpts {
				n := b.N / len(rcpts)
				if i < b.N%len(rcpts) {
					n++
				}
				if n == 0 {
					continue
				}
				res, err := smtpbench.Run(context.Background(), smtpbench.Options{
					Addr: d.addr("smtp"), From: "bench@remote.test", To: []string{rcpts[i]},
					Count: n, Concurrency: 8, Size: 10240,
				})
				if err != nil || res.Errors > 0 {
					b.Fatalf("bench: %v, %d errors, first %v", err, res.Errors, res.FirstError)
				}
				sent += res.Messages
				total.Duration += res.Duration
				total.P99 = max(total.P99, res.P99)
			}
			b.StopTimer()
			b.ReportMetric(float64(sent)/total.Duration.Seconds(), "msgs/s")
			b.ReportMetric(float64(total.P99.Microseconds())/1000, "p99-ms")
			d.stop()
		})
	}
}

// BenchmarkServeScanners: 10 KB messages to one local user through the
// MTA port of the running daemon, with no check and with each scanner
// alone (real rspamd, spamd, clamd and opendkim as a milter, started once,
// on the same machine). The figure to read is msgs/s.
func BenchmarkServeScanners(b *testing.B) {
	var pool testscan.Pool
	defer pool.Close()
	configs := []struct {
		name    string
		inbound func() string
	}{
		{"none", func() string { return "" }},
		{"clamd", func() string { return "  clamd:\n    address: " + pool.Clamd(b).Socket + "\n" }},
		{"rspamd", func() string { return "  rspamd:\n    url: " + pool.Rspamd(b).URL + "\n" }},
		{"spamd", func() string { return "  spamd:\n    address: " + pool.Spamd(b).Addr + "\n" }},
		{"opendkim", func() string { return "  milter:\n    sockets: [opendkim=inet:" + pool.OpenDKIM(b).Addr + "]\n" }},
	}
	for _, c := range configs {
		b.Run(c.name, func(b *testing.B) {
			extra := ""
			if in := c.inbound(); in != "" {
				extra = "inbound:\n" + in
			}
			d := newDaemon(b, extra)
			d.start()
			defer d.stop()
			d.cli("", "domain", "add", "example.com")
			d.cli("secret\n", "user", "add", "u1@example.com", "--password-stdin")
			b.ResetTimer()
			res, err := smtpbench.Run(context.Background(), smtpbench.Options{
				Addr: d.addr("smtp"), From: "bench@remote.test", To: []string{"u1@example.com"},
				Count: b.N, Concurrency: 8, Size: 10240,
			})
			b.StopTimer()
			if err != nil || res.Errors > 0 {
				b.Fatalf("bench: %v, %d errors, first %v", err, res.Errors, res.FirstError)
			}
			b.ReportMetric(float64(res.Messages)/res.Duration.Seconds(), "msgs/s")
			b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms")
		})
	}
}
