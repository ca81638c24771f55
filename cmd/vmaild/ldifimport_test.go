package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/internal/testsrv"
	"github.com/vmaild/vmaild/userdb"
)

var (
	exampleLDIF      = filepath.Join("..", "..", "ldif", "example.ldif")
	exampleVmailLDIF = filepath.Join("..", "..", "ldif", "example-vmail.ldif")
)

// TestLDIFImport loads ldif/example*.ldif into an empty slapd and into
// SQLite, twice each, and logs the imported users in through the directory
// the same configuration opens. (The MariaDB import runs in
// TestAdminCommands, which has a mariadbd.)
func TestLDIFImport(t *testing.T) {
	t.Run("ldap", func(t *testing.T) {
		slapd := testsrv.StartSlapd(t)
		c := newCLI(t, ldapConfig(t.TempDir(), slapd, ""))
		out := c.ok("", "ldif", "import", exampleLDIF)
		wantLines(t, "first import", out, "created  dc=example,dc=com", "created  uid=alice@example.com,ou=people,dc=example,dc=com",
			"6 created, 0 updated, 0 unchanged, 0 skipped, 0 failed")
		wantLines(t, "first vmail import", c.ok("", "ldif", "import", exampleVmailLDIF), "2 created, 0 updated, 0 unchanged, 0 skipped, 0 failed")
		out = c.ok("", "ldif", "import", exampleLDIF)
		wantLines(t, "second import", out, "0 created, 0 updated, 6 unchanged, 0 skipped, 0 failed")
		refuseLines(t, "second import", out, "created  ", "updated  ")
		wantLines(t, "second vmail import", c.ok("", "ldif", "import", exampleVmailLDIF), "0 created, 0 updated, 2 unchanged, 0 skipped, 0 failed")
		checkImported(t, c)
	})
	t.Run("sqlite", func(t *testing.T) {
		ldifSQLScenario(t, newCLI(t, sqliteConfig(t.TempDir())))
	})
	t.Run("missing file", func(t *testing.T) {
		c := newCLI(t, sqliteConfig(t.TempDir()))
		if msg := c.fails("", "ldif", "import", filepath.Join(t.TempDir(), "nope.ldif")); !strings.Contains(msg, "nope.ldif") {
			t.Errorf("missing file: %q", msg)
		}
	})
}

// ldifSQLScenario imports the example files into SQL account rows.
func ldifSQLScenario(t *testing.T, c *cli) {
	// Without --add-domains the accounts' domains must exist already.
	_, _, err := c.run("", "ldif", "import", exampleLDIF)
	if err == nil || !strings.Contains(err.Error(), "4 entries failed") {
		t.Fatalf("import without domains: %v, want 4 entries failed", err)
	}
	wantLines(t, "import without domains", c.transcript.String(), "domain example.com is not a local domain", "--add-domains")

	out := c.ok("", "ldif", "import", "--add-domains", exampleLDIF)
	wantLines(t, "first import", out, "skipped  dc=example,dc=com", "created  uid=alice@example.com,ou=people,dc=example,dc=com",
		"4 created, 0 updated, 0 unchanged, 2 skipped, 0 failed")
	wantLines(t, "first vmail import", c.ok("", "ldif", "import", exampleVmailLDIF), "2 created, 0 updated, 0 unchanged, 0 skipped, 0 failed")
	out = c.ok("", "ldif", "import", "--add-domains", exampleLDIF)
	wantLines(t, "second import", out, "0 created, 0 updated, 4 unchanged, 2 skipped, 0 failed")
	refuseLines(t, "second import", out, "created  ", "updated  ")
	wantLines(t, "second vmail import", c.ok("", "ldif", "import", exampleVmailLDIF), "0 created, 0 updated, 2 unchanged, 0 skipped, 0 failed")
	wantLines(t, "domains added by the import", c.ok("", "domain", "list"), "example.com", "example.org")
	checkImported(t, c)
}

// checkImported logs every example user in through the directory.
func checkImported(t *testing.T, c *cli) {
	t.Helper()
	ctx := context.Background()
	d := openDir(t, c.configPath)
	for addr, pw := range examplePasswords {
		_, err := d.users.Authenticate(ctx, addr, pw)
		switch {
		case addr == "erin@example.com":
			if !errors.Is(err, userdb.ErrDisabled) {
				t.Errorf("disabled erin: %v, want ErrDisabled", err)
			}
		case err != nil:
			t.Errorf("%s cannot log in after the import: %v", addr, err)
		}
		if _, err := d.users.Authenticate(ctx, addr, pw+"-wrong"); !errors.Is(err, userdb.ErrBadCredentials) && !errors.Is(err, userdb.ErrDisabled) {
			t.Errorf("%s with a wrong password: %v", addr, err)
		}
	}
	frank, err := d.users.Account(ctx, "frank@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if frank.Quota == nil || *frank.Quota != (userdb.Limit{Bytes: 1 << 30, Messages: 50000}) || frank.Maildir != "/var/vmail/example.org/frank/Maildir" || frank.Name != "Frank Quota" {
		t.Errorf("frank after the import: %+v (quota %+v)", frank, frank.Quota)
	}
	// frank's vmailSenderAddress values: on his LDAP entry, or imported
	// into the SQL sender map.
	for addr, want := range map[string]bool{"postmaster@example.org": true, "desk@news.example.org": true, "f.quota@example.org": false} {
		if ok, err := d.users.MaySendAs(ctx, "frank@example.org", addr); ok != want || err != nil {
			t.Errorf("frank as %s after the import: %v, %v; want %v", addr, ok, err, want)
		}
	}
	wantLines(t, "user list after the import", c.ok("", "user", "list"),
		"alice@example.com", "bob@example.com", "carol@example.org", "dave@example.org", "erin@example.com", "frank@example.org")
}
