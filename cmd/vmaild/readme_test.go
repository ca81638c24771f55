package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/vmaild/vmaild/internal/testsrv"
)

// readmeBlock returns the first ```yaml block after the line containing
// marker in README.md.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), marker)
	if !ok {
		t.Fatalf("README.md has no %q", marker)
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatalf("README.md: no yaml block after %q", marker)
	}
	return block
}

// TestREADMEProductionExample uses the README's production configuration
// as written, with only the servers and their credentials given in the
// environment as a deployment would, against a real slapd (StartTLS, as
// the example asks) and mariadbd: the CLI adds, changes and deletes a user,
// and the entry lands at uid=<address>,ou=people,… (one ou=people).
func TestREADMEProductionExample(t *testing.T) {
	m := testsrv.StartMariaDB(t)
	slapd := testsrv.StartSlapd(t)
	slapd.Load(t, peopleLDIF)
	if slapd.BaseDN != "dc=example,dc=com" {
		t.Fatalf("the README's example is for dc=example,dc=com, slapd serves %s", slapd.BaseDN)
	}
	yaml := readmeBlock(t, "Production default")
	for _, want := range []string{"base_dn: ou=people,dc=example,dc=com", "start_tls: true", "accounts: ldap"} {
		if !strings.Contains(yaml, want) {
			t.Fatalf("the README's production example no longer says %q; update this test", want)
		}
	}
	t.Setenv("VMAILD_LDAP_URLS", slapd.URL)
	t.Setenv("VMAILD_LDAP_TLS_CA_FILE", slapd.CAFile)
	t.Setenv("VMAILD_LDAP_BIND_DN", slapd.AdminDN)
	t.Setenv("VMAILD_LDAP_BIND_PASSWORD", slapd.AdminPassword)
	t.Setenv("VMAILD_SQL_DSN", m.CreateDatabase("readme_example"))
	t.Setenv("VMAILD_DATA_DIR", t.TempDir())
	// The example's certificate is not on this machine; set and empty,
	// the variables mean the self-signed one.
	t.Setenv("VMAILD_TLS_CERT_FILE", "")
	t.Setenv("VMAILD_TLS_KEY_FILE", "")
	c := newCLI(t, yaml)
	c.secrets = append(c.secrets, slapd.AdminPassword, m.Password)

	// README: "Apply the SQL schema with `vmaild db migrate`".
	c.ok("", "db", "migrate")
	wantLines(t, "config check", c.ok("", "config", "check"), "configuration: ok", "ldap "+slapd.URL+": reachable", "sql (mysql): reachable")
	c.ok("", "domain", "add", "example.com")
	c.ok("newbie-pw-1\n", "user", "add", "newbie@example.com", "--password-stdin")

	const dn = "uid=newbie@example.com,ou=people,dc=example,dc=com"
	conn, err := goldap.DialURL(slapd.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Bind(slapd.AdminDN, slapd.AdminPassword); err != nil {
		t.Fatal(err)
	}
	password := func() string {
		t.Helper()
		res, err := conn.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases,
			0, 0, false, "(objectClass=*)", []string{"userPassword"}, nil))
		if err != nil {
			t.Fatalf("%s after user add: %v", dn, err)
		}
		return res.Entries[0].GetAttributeValue("userPassword")
	}
	before := password()
	wantLines(t, "passwd", c.ok("newbie-pw-2\n", "user", "passwd", "newbie@example.com", "--password-stdin"), "password of newbie@example.com changed")
	if after := password(); after == before || after == "" {
		t.Errorf("user passwd did not change %s's userPassword", dn)
	}
	c.ok("", "user", "del", "newbie@example.com")
	_, err = conn.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases,
		0, 0, false, "(objectClass=*)", nil, nil))
	if !goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
		t.Errorf("%s after user del: %v, want no such object", dn, err)
	}
}
