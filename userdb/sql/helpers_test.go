package sqldir

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/testsrv"
	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/password"
)

// engine makes fresh, empty directory databases of one kind.
type engine struct {
	name string
	// dsn returns the DSN of a new, empty database for the calling test.
	dsn func(t testing.TB) string
}

// open returns a migrated directory on a new database.
func (e engine) open(t testing.TB, q Queries) *DB {
	return openDB(t, Config{Driver: e.name, DSN: e.dsn(t), Queries: q})
}

// engines returns SQLite and a MariaDB shared by the calling test; every
// open gets its own database on it, so subtests never see each other's
// rows.
func engines(t testing.TB) []engine {
	m := testsrv.StartMariaDB(t)
	var n atomic.Int64 // benchmarks run the same name more than once
	return []engine{
		{"sqlite", func(t testing.TB) string { return filepath.Join(t.TempDir(), "vmaild.db") }},
		{"mysql", func(t testing.TB) string { return m.CreateDatabase(dbName(t, n.Add(1))) }},
	}
}

// dbName derives a short, safe database name from the test name.
func dbName(t testing.TB, n int64) string {
	h := sha1.Sum([]byte(t.Name()))
	return "t" + hex.EncodeToString(h[:8]) + "_" + strconv.FormatInt(n, 10)
}

func openDB(t testing.TB, c Config) *DB {
	t.Helper()
	d, err := Open(ctx(t), c)
	if err != nil {
		t.Fatalf("open %s: %v", c.Driver, err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Migrate(ctx(t)); err != nil {
		t.Fatalf("migrate %s: %v", c.Driver, err)
	}
	return d
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func hash(t testing.TB, scheme, plain string) string {
	t.Helper()
	h, err := password.Hash(scheme, plain)
	if err != nil {
		t.Fatalf("hash %s: %v", scheme, err)
	}
	return h
}

// seed fills a directory with the data the tables below expect.
func seed(t testing.TB, d *DB) {
	t.Helper()
	c := ctx(t)
	for _, dom := range []userdb.Domain{
		{Name: "example.com", Active: true, Quota: userdb.Limit{Bytes: 1000, Messages: 10}},
		{Name: "example.net", Active: true, AliasFor: "example.com"},
		{Name: "other.org", Active: false, CatchAll: "alice@example.com"},
	} {
		if err := d.AddDomain(c, dom); err != nil {
			t.Fatalf("seed domain %s: %v", dom.Name, err)
		}
	}
	for _, a := range []struct {
		acct userdb.Account
		hash string
	}{
		{userdb.Account{Address: "alice@example.com", Name: "Alice", Active: true}, "{PLAIN}secret"},
		{userdb.Account{Address: "bob@example.com", Name: "Bob", Active: true, Quota: &userdb.Limit{Bytes: 500, Messages: 5}}, hash(t, "SSHA512", "hunter2")},
		{userdb.Account{Address: "carol@example.com", Name: "Carol", Active: false}, hash(t, "SHA512-CRYPT", "carolpw")},
		{userdb.Account{Address: "dave@example.com", Active: true, Maildir: "/srv/mail/dave", Quota: &userdb.Limit{}}, "{PLAIN}davepw"},
	} {
		if err := d.AddAccount(c, a.acct, a.hash); err != nil {
			t.Fatalf("seed account %s: %v", a.acct.Address, err)
		}
	}
	for _, a := range [][2]string{
		{"postmaster@example.com", "alice@example.com"},
		{"sales@example.com", "alice@example.com"},
		{"sales@example.com", "bob@example.com"},
		{"@other.org", "alice@example.com"},
		{"team@example.net", "friend@elsewhere.example"},
	} {
		if err := d.AddAlias(c, a[0], a[1]); err != nil {
			t.Fatalf("seed alias %s → %s: %v", a[0], a[1], err)
		}
	}
}
