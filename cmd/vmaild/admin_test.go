package main

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/vmaild/vmaild/internal/testsrv"
	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/password"
)

// peopleLDIF is the part of ldif/example.ldif that user add needs: the
// base entry and ou=people.
const peopleLDIF = `dn: dc=example,dc=com
objectClass: top
objectClass: dcObject
objectClass: organization
dc: example
o: Example Mail

dn: ou=people,dc=example,dc=com
objectClass: top
objectClass: organizationalUnit
ou: people
`

// TestAdminCommands drives domain, user, alias, quota and db migrate on
// each directory layout: SQLite alone, MariaDB alone, and LDAP accounts
// with MariaDB domains. One mariadbd and one slapd serve every subtest.
func TestAdminCommands(t *testing.T) {
	m := testsrv.StartMariaDB(t)
	slapd := testsrv.StartSlapd(t)
	slapd.Load(t, peopleLDIF)

	t.Run("sqlite", func(t *testing.T) {
		c := newCLI(t, sqliteConfig(t.TempDir()))
		// The embedded database migrates itself on first use, so an
		// admin command works before serve ever ran.
		if out := c.ok("", "domain", "list"); !strings.Contains(out, "DOMAIN") {
			t.Errorf("domain list on a fresh SQLite database: %q", out)
		}
		adminScenario(t, c, nil)
	})
	t.Run("mysql", func(t *testing.T) {
		c := newCLI(t, mysqlConfig(t.TempDir(), m.CreateDatabase("admin_mysql")))
		wantLines(t, "first migrate", c.ok("", "db", "migrate"), "applied ")
		adminScenario(t, c, nil)
	})
	t.Run("ldap+mysql", func(t *testing.T) {
		dsn := m.CreateDatabase("admin_ldap")
		c := newCLI(t, ldapConfig(t.TempDir(), slapd, "sql:\n  driver: mysql\n  dsn: \""+dsn+"\""))
		wantLines(t, "first migrate", c.ok("", "db", "migrate"), "applied ")
		adminScenario(t, c, slapd)
	})
	t.Run("ldif import mysql", func(t *testing.T) {
		c := newCLI(t, mysqlConfig(t.TempDir(), m.CreateDatabase("ldif_mysql")))
		c.ok("", "db", "migrate")
		ldifSQLScenario(t, c)
	})
	t.Run("ldif import iredmail mysql", func(t *testing.T) {
		c := newCLI(t, mysqlConfig(t.TempDir(), m.CreateDatabase("ldif_iredmail")))
		c.ok("", "db", "migrate")
		iredmailSQLScenario(t, c)
	})
}

func adminScenario(t *testing.T, c *cli, slapd *testsrv.Slapd) {
	ctx := context.Background()

	// Migrating again changes nothing.
	if out := c.ok("", "db", "migrate"); strings.TrimSpace(out) != "schema is up to date" {
		t.Errorf("second migrate: %q, want only \"schema is up to date\"", out)
	}

	// Domains.
	wantLines(t, "domain add", c.ok("", "domain", "add", "Example.COM", "--quota", "1G"), "domain example.com added")
	c.ok("", "domain", "add", "example.net", "--catch-all", "catchall@example.com")
	c.ok("", "domain", "add", "alias.example", "--alias-for", "example.com")
	c.ok("", "domain", "add", "off.example", "--disabled")
	if msg := c.fails("", "domain", "add", "example.com"); !strings.Contains(msg, "exist") {
		t.Errorf("second domain add: %q, want an already-exists error", msg)
	}
	list := c.ok("", "domain", "list")
	wantLines(t, "domain list", list, "example.com", "1G", "catchall@example.com", "alias.example", "off.example")
	for _, l := range strings.Split(list, "\n") {
		if strings.HasPrefix(l, "off.example") && !strings.Contains(l, "disabled") {
			t.Errorf("domain list: off.example not shown disabled: %q", l)
		}
	}

	// Users: passwords only from standard input or a terminal.
	d := openDir(t, c.configPath)
	wantLines(t, "user add", c.ok("alice-pw-1\n", "user", "add", "alice@example.com", "--password-stdin", "--name", "Alice Liddell"),
		"user alice@example.com added")
	c.ok("bob-pw-1\n", "user", "add", "bob@example.com", "--password-stdin", "--quota", "500M")
	if _, err := d.users.Authenticate(ctx, "alice@example.com", "alice-pw-1"); err != nil {
		t.Errorf("alice cannot log in after user add: %v", err)
	}
	if _, err := d.users.Authenticate(ctx, "alice@example.com", "wrong"); !errors.Is(err, userdb.ErrBadCredentials) {
		t.Errorf("wrong password: %v, want ErrBadCredentials", err)
	}
	withoutTerminal(t, func() {
		msg := c.fails("", "user", "add", "carol@example.com")
		wantLines(t, "user add without a password source", msg, "no terminal", "--password-stdin")
		msg = c.fails("", "user", "passwd", "alice@example.com")
		wantLines(t, "passwd without a password source", msg, "no terminal", "--password-stdin")
	})
	if msg := c.fails("\n", "user", "add", "carol@example.com", "--password-stdin"); !strings.Contains(msg, "empty password") {
		t.Errorf("empty password: %q", msg)
	}
	if msg := c.fails("x-pw\n", "user", "add", "carol@nowhere.example", "--password-stdin"); !strings.Contains(msg, "nowhere.example is not a local domain") {
		t.Errorf("user of an unknown domain: %q", msg)
	}
	if msg := c.fails("alice-pw-2\n", "user", "add", "alice@example.com", "--password-stdin"); !strings.Contains(msg, "exist") {
		t.Errorf("second user add: %q, want an already-exists error", msg)
	}
	if _, err := d.users.Authenticate(ctx, "alice@example.com", "alice-pw-1"); err != nil {
		t.Errorf("a refused second add changed alice's password: %v", err)
	}

	wantLines(t, "passwd", c.ok("alice-pw-3\n", "user", "passwd", "alice@example.com", "--password-stdin"), "password of alice@example.com changed")
	d.cache.Flush()
	if _, err := d.users.Authenticate(ctx, "alice@example.com", "alice-pw-3"); err != nil {
		t.Errorf("new password refused: %v", err)
	}
	if _, err := d.users.Authenticate(ctx, "alice@example.com", "alice-pw-1"); !errors.Is(err, userdb.ErrBadCredentials) {
		t.Errorf("old password after passwd: %v, want ErrBadCredentials", err)
	}
	if msg := c.fails("x-pw\n", "user", "passwd", "nobody@example.com", "--password-stdin"); !strings.Contains(msg, "does not exist") {
		t.Errorf("passwd of an unknown user: %q", msg)
	}
	if slapd != nil {
		// The LDAP entry itself holds the hash: slapd checks it on a bind.
		conn, err := goldap.DialURL(slapd.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.Bind("uid=alice@example.com,ou=people,"+slapd.BaseDN, "alice-pw-3"); err != nil {
			t.Errorf("bind as alice with the password set by passwd: %v", err)
		}
	}

	users := c.ok("", "user", "list")
	wantLines(t, "user list", users, "alice@example.com", "Alice Liddell", "bob@example.com", "500M")
	wantLines(t, "user list example.com", c.ok("", "user", "list", "example.com"), "alice@example.com")
	refuseLines(t, "user list example.net", c.ok("", "user", "list", "example.net"), "alice@example.com")
	show := c.ok("", "user", "show", "alice@example.com")
	wantLines(t, "user show", show, "alice@example.com", "Alice Liddell", "active", "1G (domain default)", "0 bytes in 0 messages")

	// Quotas: own limit with a message count, then back to the domain's.
	wantLines(t, "quota set", c.ok("", "quota", "set", "alice@example.com", "2G", "--messages", "100"), "2G, 100 messages")
	wantQuotaRow(t, c, "alice@example.com", "0", "2G", "0", "100")
	if err := d.users.Quotas.AddUsage(ctx, "alice@example.com", 4096, 2); err != nil {
		t.Fatal(err)
	}
	wantQuotaRow(t, c, "alice@example.com", "4K", "2G", "2", "100")
	d.cache.Flush()
	if acct, err := d.users.Account(ctx, "alice@example.com"); err != nil || acct.Quota == nil || *acct.Quota != (userdb.Limit{Bytes: 2 << 30, Messages: 100}) {
		t.Errorf("account after quota set: %+v, %v", acct, err)
	}
	wantLines(t, "quota inherit", c.ok("", "quota", "set", "alice@example.com", "--inherit"), "domain default")
	wantQuotaRow(t, c, "alice@example.com", "4K", "1G", "2", "-")
	wantQuotaRow(t, c, "bob@example.com", "0", "500M", "0", "-")
	if msg := c.fails("", "quota", "set", "alice@example.com"); !strings.Contains(msg, "--inherit") {
		t.Errorf("quota set without a size: %q", msg)
	}
	if msg := c.fails("", "quota", "set", "alice@example.com", "lots"); !strings.Contains(msg, "size") {
		t.Errorf("quota set with a bad size: %q", msg)
	}

	// Aliases, a catch-all source included.
	c.ok("", "alias", "add", "postmaster@example.com", "alice@example.com", "bob@example.com")
	c.ok("", "alias", "add", "@example.net", "alice@example.com")
	aliases := c.ok("", "alias", "list")
	wantLines(t, "alias list", aliases, "postmaster@example.com", "@example.net")
	d.cache.Flush()
	dests, err := d.users.Resolve(ctx, "postmaster@example.com")
	if err != nil || len(dests) != 2 {
		t.Errorf("resolve postmaster: %+v, %v", dests, err)
	}
	wantLines(t, "alias del one", c.ok("", "alias", "del", "postmaster@example.com", "bob@example.com"), "alias postmaster@example.com → bob@example.com deleted")
	aliases = c.ok("", "alias", "list", "example.com")
	wantLines(t, "alias list after del", aliases, "postmaster@example.com")
	refuseLines(t, "alias list after del", aliases, "bob@example.com", "@example.net")
	if out := c.ok("", "alias", "del", "postmaster@example.com"); strings.TrimSpace(out) != "alias postmaster@example.com deleted" {
		t.Errorf("alias del of a whole alias: %q", out)
	}
	if msg := c.fails("", "alias", "del", "postmaster@example.com"); !strings.Contains(msg, "does not exist") {
		t.Errorf("alias del of a missing alias: %q", msg)
	}
	refuseLines(t, "alias list after del all", c.ok("", "alias", "list"), "postmaster@example.com")

	// The sender map: receiving postmaster@ gives no right to send as it,
	// a grant does; "@domain" grants a whole domain.
	c.ok("", "alias", "add", "postmaster@example.com", "alice@example.com")
	if msg := c.fails("", "sender", "check", "alice@example.com", "postmaster@example.com"); !strings.Contains(msg, "alice@example.com may not send as postmaster@example.com") {
		t.Errorf("sender check before a grant: %q", msg)
	}
	wantLines(t, "sender add", c.ok("", "sender", "add", "Postmaster@Example.com", "alice@example.com", "bob@example.com"),
		"alice@example.com may send as postmaster@example.com", "bob@example.com may send as postmaster@example.com")
	c.ok("", "sender", "add", "@example.net", "alice@example.com")
	c.ok("", "sender", "add", "news@elsewhere.example", "bob@example.com")
	if msg := c.fails("", "sender", "add", "postmaster@example.com", "alice@example.com"); !strings.Contains(msg, "exist") {
		t.Errorf("second sender add: %q, want an already-exists error", msg)
	}
	if msg := c.fails("", "sender", "add", "postmaster@example.com", "nobody@example.com"); !strings.Contains(msg, "no account nobody@example.com") {
		t.Errorf("sender add for an unknown login: %q", msg)
	}
	if msg := c.fails("", "sender", "add", "postmaster@", "alice@example.com"); !strings.Contains(msg, "invalid") {
		t.Errorf("sender add of a malformed address: %q", msg)
	}
	wantLines(t, "sender list", c.ok("", "sender", "list"), "ADDRESS", "@example.net", "news@elsewhere.example", "postmaster@example.com")
	senders := c.ok("", "sender", "list", "example.com")
	wantLines(t, "sender list example.com", senders, "postmaster@example.com  alice@example.com", "postmaster@example.com  bob@example.com")
	refuseLines(t, "sender list example.com", senders, "@example.net", "elsewhere")
	for _, tt := range []struct {
		account, address string
		want             bool
	}{
		{"alice@example.com", "postmaster@example.com", true},
		{"alice@example.com", "anyone@example.net", true},
		{"alice@example.com", "alice+x@alias.example", true},
		{"bob@example.com", "anyone@example.net", false},
		{"bob@example.com", "news@elsewhere.example", true},
	} {
		_, _, err := c.run("", "sender", "check", tt.account, tt.address)
		if (err == nil) != tt.want {
			t.Errorf("sender check %s %s: %v, want allowed = %v", tt.account, tt.address, err, tt.want)
		}
	}
	wantLines(t, "sender del one", c.ok("", "sender", "del", "postmaster@example.com", "bob@example.com"), "bob@example.com may no longer send as postmaster@example.com")
	if msg := c.fails("", "sender", "del", "postmaster@example.com", "bob@example.com"); !strings.Contains(msg, "does not exist") {
		t.Errorf("second sender del: %q", msg)
	}
	wantLines(t, "sender del all", c.ok("", "sender", "del", "@example.net"), "every grant for @example.net deleted")
	refuseLines(t, "sender list after del", c.ok("", "sender", "list"), "@example.net", "postmaster@example.com  bob@")
	c.ok("", "alias", "del", "postmaster@example.com")

	// Deleting.
	wantLines(t, "user del", c.ok("", "user", "del", "bob@example.com"), "user bob@example.com deleted")
	refuseLines(t, "user list after del", c.ok("", "user", "list"), "bob@example.com")
	// A deleted account's grants go with it, wherever the account lived.
	refuseLines(t, "sender list after user del", c.ok("", "sender", "list"), "bob@example.com")
	d.cache.Flush()
	if _, err := d.users.Authenticate(ctx, "bob@example.com", "bob-pw-1"); !errors.Is(err, userdb.ErrBadCredentials) {
		t.Errorf("deleted bob logs in: %v", err)
	}
	if msg := c.fails("", "user", "del", "bob@example.com"); !strings.Contains(msg, "does not exist") {
		t.Errorf("second user del: %q", msg)
	}
	c.ok("", "domain", "del", "off.example")
	refuseLines(t, "domain list after del", c.ok("", "domain", "list"), "off.example")
	if slapd == nil {
		// SQL knows its accounts: a domain in use stays.
		if msg := c.fails("", "domain", "del", "example.com"); !strings.Contains(msg, "in use") {
			t.Errorf("deleting a domain with accounts: %q", msg)
		}
	}
}

// wantQuotaRow checks the numbers `quota show` prints for an address.
func wantQuotaRow(t *testing.T, c *cli, addr string, want ...string) {
	t.Helper()
	out := c.ok("", "quota", "show", addr)
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == addr {
			if strings.Join(f[1:], " ") != strings.Join(want, " ") {
				t.Errorf("quota show %s: %v, want %v", addr, f[1:], want)
			}
			return
		}
	}
	t.Errorf("quota show %s: no row:\n%s", addr, out)
}

// withoutTerminal runs f with standard input that is no terminal, as under
// cron or a pipe without --password-stdin.
func withoutTerminal(t *testing.T, f func()) {
	t.Helper()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	old := os.Stdin
	os.Stdin = null
	defer func() { os.Stdin = old }()
	f()
}

// TestHashPassword checks that what hash-password prints verifies, for
// the schemes admins paste into LDAP and SQL.
func TestHashPassword(t *testing.T) {
	const pw = "correct horse battery staple"
	for _, scheme := range []string{"SSHA", "SSHA256", "SSHA512", "SHA256-CRYPT", "SHA512-CRYPT", "BLF-CRYPT", "ARGON2I", "ARGON2ID", "PLAIN"} {
		t.Run(scheme, func(t *testing.T) {
			var transcript strings.Builder
			out, _, err := runRoot(t, &transcript, pw+"\n", "hash-password", "--password-stdin", "--scheme", scheme)
			if err != nil {
				t.Fatal(err)
			}
			h := strings.TrimSpace(out)
			if !strings.HasPrefix(h, "{"+scheme+"}") {
				t.Errorf("hash %q lacks the {%s} prefix", h, scheme)
			}
			if ok, err := password.Verify(h, pw); !ok || err != nil {
				t.Errorf("Verify(%q) = %v, %v", h, ok, err)
			}
			if ok, _ := password.Verify(h, pw+"x"); ok {
				t.Errorf("Verify accepts a wrong password for %q", h)
			}
			if scheme != "PLAIN" && strings.Contains(transcript.String(), pw) {
				t.Errorf("password in the output: %s", transcript.String())
			}
		})
	}
	t.Run("default scheme", func(t *testing.T) {
		out, _, err := runRoot(t, nil, pw+"\n", "hash-password", "--password-stdin")
		if err != nil {
			t.Fatal(err)
		}
		if got := password.Scheme(strings.TrimSpace(out)); !strings.EqualFold(got, password.DefaultScheme) {
			t.Errorf("default scheme: %q, want %q", got, password.DefaultScheme)
		}
	})
	t.Run("unknown scheme", func(t *testing.T) {
		if _, _, err := runRoot(t, nil, pw+"\n", "hash-password", "--password-stdin", "--scheme", "ROT13"); err == nil || !strings.Contains(err.Error(), "ROT13") {
			t.Errorf("unknown scheme: %v", err)
		}
	})
	t.Run("no terminal", func(t *testing.T) {
		withoutTerminal(t, func() {
			if _, _, err := runRoot(t, nil, pw+"\n", "hash-password"); err == nil || !strings.Contains(err.Error(), "--password-stdin") {
				t.Errorf("hash-password without a terminal: %v", err)
			}
		})
	})
}
