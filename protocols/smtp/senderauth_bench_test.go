package smtp

import (
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/senderauth"
)

// BenchmarkMTASenderAuth: a 4 KiB message signed by dkimpy, sent over 4
// connections to the MTA listener (the fake agent stores nothing), without
// checks and with SPF, DKIM and DMARC evaluated against the loopback DNS
// server (three questions a message, no cache). The figure is msgs/s.
func BenchmarkMTASenderAuth(b *testing.B) {
	for _, name := range []string{"none", "spf+dkim+dmarc"} {
		b.Run(name, func(b *testing.B) {
			w := newAuthWorld(b)
			signed := w.sign(b, authMessage("a@signer.test", strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 64)))
			// Quiet: the test logger would cost more than the checks.
			opts := []serverOpt{func(s *Server) { s.Logger = nil }}
			if name != "none" {
				opts = append(opts, withSenderAuth(b, w, senderauth.Reject))
			}
			e := startServer(b, RoleMTA, false, opts...)
			const conns = 4
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, conns)
			for i := range conns {
				n := b.N / conns
				if i < b.N%conns {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := gosmtp.Dial(e.addr)
					if err != nil {
						errs <- err
						return
					}
					defer c.Close()
					for range n {
						if err := c.SendMail("a@signer.test", []string{"alice@example.org"}, strings.NewReader(signed)); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}
