package sqldir

import (
	"testing"

	"github.com/vmaild/vmaild/userdb"
)

// benchEngines gives each benchmark its own databases; MariaDB starts once
// per benchmark function.
func benchEngines(b *testing.B, fn func(b *testing.B, d *DB)) {
	for _, e := range engines(b) {
		b.Run(e.name, func(b *testing.B) {
			d := e.open(b, Queries{})
			seed(b, d)
			b.ResetTimer()
			fn(b, d)
		})
	}
}

func BenchmarkLookupAccount(b *testing.B) {
	benchEngines(b, func(b *testing.B, d *DB) {
		c := ctx(b)
		for b.Loop() {
			if _, err := d.LookupAccount(c, "bob@example.com"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkReserveUsage(b *testing.B) {
	benchEngines(b, func(b *testing.B, d *DB) {
		c := ctx(b)
		for b.Loop() {
			if _, err := d.ReserveUsage(c, "bob@example.com", 1, 1, userdb.Limit{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReserveUsageParallel is many deliveries to one mailbox at once:
// the row lock serialises them.
func BenchmarkReserveUsageParallel(b *testing.B) {
	benchEngines(b, func(b *testing.B, d *DB) {
		c := ctx(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := d.ReserveUsage(c, "bob@example.com", 1, 1, userdb.Limit{}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
