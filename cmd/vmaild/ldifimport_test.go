package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/internal/testsrv"
	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/ldap"
	"github.com/vmaild/vmaild/userdb/ldif"
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

var iredmailLDIF = filepath.Join("testdata", "iredmail.ldif")

// TestLDIFImportIRedMail imports users exported from iRedMail: quotas from
// mailQuota, status from accountStatus, aliases from mailAlternateAddress
// and mailForwardingAddress, into SQLite accounts and into slapd (whose
// schema lacks iRedMail's). A dry run first changes nothing; a second run
// reports nothing to change. (MariaDB: TestAdminCommands.)
func TestLDIFImportIRedMail(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		iredmailSQLScenario(t, newCLI(t, sqliteConfig(t.TempDir())))
	})
	t.Run("ldap", func(t *testing.T) {
		slapd := testsrv.StartSlapd(t)
		c := newCLI(t, ldapConfig(t.TempDir(), slapd, ""))
		c.ok("", "domain", "add", "example.com")
		before := directorySnapshot(c)
		out := c.ok("", "ldif", "import", "--dry-run", iredmailLDIF)
		wantLines(t, "dry run", out, "created  dc=example,dc=com", "created  mail=alice@example.com,ou=Users,dc=example,dc=com",
			"mail=alice@example.com,ou=Users,dc=example,dc=com: mapped mailQuota, accountStatus, mailAlternateAddress, mailForwardingAddress",
			"dropped object class amavisAccount, mailUser", "dropped storageBaseDirectory, mailMessageStore, enabledService",
			"dropped homeDirectory (no object class left",
			"warning  mail=carol@example.org,ou=Users,dc=example,dc=com: domain example.org is not a local domain", "--add-domains",
			"6 created, 0 updated, 0 unchanged, 0 skipped, 0 failed, 1 warnings (dry run: nothing was written)")
		if after := directorySnapshot(c); after != before {
			t.Errorf("the dry run changed the directory:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		out = c.ok("", "ldif", "import", iredmailLDIF)
		wantLines(t, "first import", out, "created  dc=example,dc=com", "created  mail=carol@example.org,ou=Users,dc=example,dc=com",
			"its aliases wait for the domain", "6 created, 0 updated, 0 unchanged, 0 skipped, 0 failed, 1 warnings\n")
		out = c.ok("", "ldif", "import", iredmailLDIF)
		wantLines(t, "second import", out, "0 created, 0 updated, 6 unchanged, 0 skipped, 0 failed, 1 warnings")
		refuseLines(t, "second import", out, "created  ", "updated  ")
		out = c.ok("", "ldif", "import", "--add-domains", iredmailLDIF)
		wantLines(t, "import adding example.org", out, "domain   example.org added", "updated  mail=carol@example.org",
			"0 created, 1 updated, 5 unchanged, 0 skipped, 0 failed\n")
		wantLines(t, "third import", c.ok("", "ldif", "import", iredmailLDIF), "0 created, 0 updated, 6 unchanged, 0 skipped, 0 failed\n")
		checkIRedMail(t, c)
	})
}

// iredmailSQLScenario imports the iRedMail users into SQL account rows.
func iredmailSQLScenario(t *testing.T, c *cli) {
	c.ok("", "domain", "add", "example.com")
	before := directorySnapshot(c)
	out := c.ok("", "ldif", "import", "--dry-run", "--add-domains", iredmailLDIF)
	wantLines(t, "dry run", out, "created  mail=postmaster@example.com,ou=Users,dc=example,dc=com", "domain   example.org added",
		"4 created, 0 updated, 0 unchanged, 2 skipped, 0 failed (dry run: nothing was written)")
	if after := directorySnapshot(c); after != before {
		t.Errorf("the dry run changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Without --add-domains carol's domain is refused, with the way out.
	if _, _, err := c.run("", "ldif", "import", iredmailLDIF); err == nil || !strings.Contains(err.Error(), "1 entries failed") {
		t.Fatalf("import without example.org: %v, want 1 entries failed", err)
	}
	wantLines(t, "import without example.org", c.transcript.String(),
		"failed   mail=carol@example.org,ou=Users,dc=example,dc=com (line", "domain example.org is not a local domain", "--add-domains",
		"3 created, 0 updated, 0 unchanged, 2 skipped, 1 failed")
	out = c.ok("", "ldif", "import", "--add-domains", iredmailLDIF)
	wantLines(t, "import with --add-domains", out, "created  mail=carol@example.org", "1 created, 0 updated, 3 unchanged, 2 skipped, 0 failed")
	out = c.ok("", "ldif", "import", iredmailLDIF)
	wantLines(t, "second import", out, "0 created, 0 updated, 4 unchanged, 2 skipped, 0 failed")
	refuseLines(t, "second import", out, "created  ", "updated  ")
	// A changed quota is an update, and only that entry's.
	changed := filepath.Join(t.TempDir(), "changed.ldif")
	if err := os.WriteFile(changed, []byte(strings.Replace(readFile(t, iredmailLDIF), "mailQuota: 524288000", "mailQuota: 734003200", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	wantLines(t, "changed quota", c.ok("", "ldif", "import", changed), "updated  mail=alice@example.com", "0 created, 1 updated, 3 unchanged")
	c.ok("", "ldif", "import", iredmailLDIF)
	checkIRedMail(t, c)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// directorySnapshot is what the CLI lists of accounts, domains and
// aliases (or why it could not list them: an empty slapd has no base
// entry): a dry run must leave it as it was.
func directorySnapshot(c *cli) string {
	var b strings.Builder
	for _, what := range []string{"user", "domain", "alias"} {
		out, _, err := c.run("", what, "list")
		fmt.Fprintf(&b, "%s%v\n", out, err)
	}
	return b.String()
}

// checkIRedMail checks the imported iRedMail users through the directory
// the server would open.
func checkIRedMail(t *testing.T, c *cli) {
	t.Helper()
	ctx := context.Background()
	d := openDir(t, c.configPath)
	for addr, pw := range map[string]string{"postmaster@example.com": "postmaster-secret", "alice@example.com": "alice-secret",
		"carol@example.org": "carol-secret"} {
		if _, err := d.users.Authenticate(ctx, addr, pw); err != nil {
			t.Errorf("%s cannot log in after the import: %v", addr, err)
		}
	}
	if _, err := d.users.Authenticate(ctx, "bob@example.com", "bob-secret"); !errors.Is(err, userdb.ErrDisabled) {
		t.Errorf("bob (accountStatus: disabled): %v, want ErrDisabled", err)
	}
	for addr, want := range map[string]int64{"postmaster@example.com": 1 << 30, "alice@example.com": 524288000,
		"carol@example.org": 2 << 30, "bob@example.com": 0} {
		a, err := d.users.Account(ctx, addr)
		if err != nil && !errors.Is(err, userdb.ErrDisabled) {
			t.Errorf("account %s: %v", addr, err)
			continue
		}
		if a == nil || a.Quota == nil || a.Quota.Bytes != want {
			t.Errorf("%s after the import: %+v, want a quota of %d bytes (mailQuota)", addr, a, want)
		}
	}
	for addr, want := range map[string]string{
		"abuse@example.com":      "postmaster@example.com(local)",
		"hostmaster@example.com": "postmaster@example.com(local)",
		"a.liddell@example.com":  "alice.archive@example.net alice@example.com(local)",
		"alice@example.com":      "alice.archive@example.net alice@example.com(local)",
		"bob@example.com":        "bob@elsewhere.example",
		"c@example.org":          "carol@example.org(local)",
	} {
		dests, err := d.users.Resolve(ctx, addr)
		var got []string
		for _, dst := range dests {
			s := dst.Address
			if dst.Local {
				s += "(local)"
			}
			got = append(got, s)
		}
		slices.Sort(got)
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("Resolve(%s) = %v, %v; want %s", addr, got, err, want)
		}
	}
}

// TestImportMapping: the foreign attributes' units, Dovecot quota rules
// and --map overrides.
func TestImportMapping(t *testing.T) {
	entry := func(attrs ...string) ldif.Entry {
		e := ldif.Entry{DN: "mail=x@example.com,ou=Users,dc=example,dc=com"}
		for i := 0; i < len(attrs); i += 2 {
			e.Attrs = append(e.Attrs, ldif.Attr{Name: attrs[i], Values: []string{attrs[i+1]}})
		}
		return e
	}
	tests := []struct {
		name    string
		maps    []string
		attrs   []string
		want    userdb.Limit
		wantErr string
	}{
		{"iRedMail mailQuota is bytes", nil, []string{"mailQuota", "1048576"}, userdb.Limit{Bytes: 1 << 20}, ""},
		{"mailboxQuota is bytes", nil, []string{"mailboxQuota", "2048"}, userdb.Limit{Bytes: 2048}, ""},
		{"Dovecot/PostfixAdmin quota is bytes", nil, []string{"quota", "5000"}, userdb.Limit{Bytes: 5000}, ""},
		{"qmail-ldap size and count", nil, []string{"mailQuotaSize", "100", "mailQuotaCount", "7"}, userdb.Limit{Bytes: 100, Messages: 7}, ""},
		{"Dovecot storage= is KiB", nil, []string{"quotaRule", "*:storage=1024"}, userdb.Limit{Bytes: 1 << 20}, ""},
		{"Dovecot storage=1G", nil, []string{"quotaRule", "*:storage=1G:messages=100"}, userdb.Limit{Bytes: 1 << 30, Messages: 100}, ""},
		{"Dovecot bytes= is bytes", nil, []string{"quotaRule", "*:bytes=1000"}, userdb.Limit{Bytes: 1000}, ""},
		{"Dovecot per-mailbox rule refused", nil, []string{"quotaRule", "Trash:storage=+100M"}, userdb.Limit{}, "every mailbox"},
		{"--map to KiB (Kolab)", []string{"mailquota=quota_kib"}, []string{"mailQuota", "10"}, userdb.Limit{Bytes: 10 << 10}, ""},
		{"--map a new attribute", []string{"myQuotaMB=quota_mib"}, []string{"myQuotaMB", "3"}, userdb.Limit{Bytes: 3 << 20}, ""},
		{"--map ignore", []string{"mailQuota=ignore"}, []string{"mailQuota", "3"}, userdb.Limit{}, ""},
		{"bad value", nil, []string{"mailQuota", "lots"}, userdb.Limit{}, "not a non-negative integer"},
		{"bad --map", []string{"mailQuota=gigabytes"}, nil, userdb.Limit{}, "want attribute=field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := newImportMapping(ldap.SchemaAttributes(), tc.maps)
			var rec importRecord
			if err == nil {
				rec, err = m.translate(entry(append([]string{"mail", "x@example.com"}, tc.attrs...)...))
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got userdb.Limit
			if rec.acct.Quota != nil {
				got = *rec.acct.Quota
			}
			if got != tc.want {
				t.Errorf("quota %+v, want %+v", got, tc.want)
			}
		})
	}
}
