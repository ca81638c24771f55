package bridge

import (
	"testing"

	"github.com/vmaild/vmaild/userdb"
)

// benchSetups are the directory as served: straight from SQLite, and
// behind the cache `vmaild serve` puts in front of it.
func benchSetups(b *testing.B) map[string]*Answers {
	plain := newFixture(b)
	cached := newFixture(b)
	c := userdb.NewCache(cached.db, cached.db, userdb.CacheConfig{})
	cached.users.Accounts, cached.users.Domains = c.Accounts(), c.Domains()
	return map[string]*Answers{"uncached": plain.answers, "cached": cached.answers}
}

// BenchmarkDovecotAuth: PLAIN logins per second through the socket, each
// client on its own connection as each smtpd process is; the accounts'
// hashes are SSHA, so what is measured is the bridge and the directory,
// not a password hash's cost.
func BenchmarkDovecotAuth(b *testing.B) {
	setups := benchSetups(b)
	for _, name := range []string{"uncached", "cached"} {
		a := setups[name]
		b.Run(name, func(b *testing.B) {
			path := serve(b, &Dovecot{Answers: a}, 0)
			req := "AUTH\t1\tPLAIN\tservice=smtp\trip=127.0.0.1\tresp=" + b64("\x00alice@example.com\x00alice-secret") + "\n"
			b.RunParallel(func(pb *testing.PB) {
				c := dial(b, path)
				c.handshake()
				for pb.Next() {
					c.send(req)
					if l := c.line(); l != "OK\t1\tuser=alice@example.com" {
						b.Errorf("answer %q", l)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "auths/s")
		})
	}
}

// BenchmarkSocketmapLookup: virtual_alias_maps lookups of an alias of two
// mailboxes per second.
func BenchmarkSocketmapLookup(b *testing.B) {
	setups := benchSetups(b)
	for _, name := range []string{"uncached", "cached"} {
		a := setups[name]
		b.Run(name, func(b *testing.B) {
			path := serve(b, &Socketmap{Answers: a}, 0)
			req := netstring("virtual_alias_maps sales@example.com")
			b.RunParallel(func(pb *testing.PB) {
				c := dial(b, path)
				for pb.Next() {
					c.send(req)
					if got := c.netstring(); got != "OK alice@example.com,bob@example.com" {
						b.Errorf("answer %q", got)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
		})
	}
}
