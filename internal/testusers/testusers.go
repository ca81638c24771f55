// Package testusers makes the user directories that tests log in
// against: accounts as LDIF for a private slapd, or in a real SQLite
// directory as `vmaild serve` opens it. Tests of several packages need the
// same accounts with the same passwords, so they are made in one place.
package testusers

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/password"
	sqldir "github.com/vmaild/vmaild/userdb/sql"
)

// Burst returns n distinct account addresses, burst000@example.com on,
// for tests that send many logins or lookups at once.
func Burst(n int) []string {
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("burst%03d@example.com", i)
	}
	return users
}

// Password is the password LDIF gives each account: its own, so a login
// that reached the wrong entry would fail.
func Password(addr string) string { return "pw-" + addr }

// LDIF is a directory of the given accounts under ou=people,dc=example,dc=com,
// in the shape of ldif/example.ldif, each with its Password hashed as SSHA,
// which slapd verifies itself.
func LDIF(t testing.TB, users []string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("dn: dc=example,dc=com\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n")
	b.WriteString("dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	for _, u := range users {
		h, err := password.Hash("SSHA", Password(u))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "dn: uid=%s,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nmail: %s\nuserPassword: %s\n\n",
			u, u, u, u, u, h)
	}
	return b.String()
}

// SQLite opens an empty, migrated SQLite directory in a temporary folder
// of the test, closed when the test ends.
func SQLite(t testing.TB) *sqldir.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqldir.Open(ctx, sqldir.Config{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "vmaild.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// AddAccounts adds an active account to db for each address of accounts,
// with the password it maps to hashed in scheme (in address order, so the
// database is the same on every run).
func AddAccounts(t testing.TB, db *sqldir.DB, scheme string, accounts map[string]string) {
	t.Helper()
	for _, addr := range slices.Sorted(maps.Keys(accounts)) {
		h, err := password.Hash(scheme, accounts[addr])
		if err != nil {
			t.Fatal(err)
		}
		if err := db.AddAccount(context.Background(), userdb.Account{Address: addr, Active: true}, h); err != nil {
			t.Fatal(err)
		}
	}
}
