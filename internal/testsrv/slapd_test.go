package testsrv

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
)

func repoFile(t *testing.T, rel string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", rel)
}

func adminConn(t *testing.T, s *Slapd) *goldap.Conn {
	t.Helper()
	c, err := goldap.DialURL(s.URL)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Bind(s.AdminDN, s.AdminPassword); err != nil {
		t.Fatalf("bind: %v", err)
	}
	return c
}

func count(t *testing.T, c *goldap.Conn, base, filter string) int {
	t.Helper()
	res, err := c.Search(goldap.NewSearchRequest(base, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases,
		0, 0, false, filter, []string{"dn"}, nil))
	if err != nil {
		t.Fatalf("search %s: %v", filter, err)
	}
	return len(res.Entries)
}

func TestSlapdLoadStopStart(t *testing.T) {
	s := StartSlapd(t)
	s.Load(t, `dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: uid=x@example.com,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: vmailAccount
uid: x@example.com
cn: X
sn: X
mail: x@example.com
vmailQuotaBytes: 1000
vmailActive: TRUE
`)
	c := adminConn(t, s)
	if n := count(t, c, s.BaseDN, "(vmailQuotaBytes>=500)"); n != 1 {
		t.Fatalf("vmaild schema: %d entries with a quota, want 1", n)
	}
	c.Close()

	s.Stop()
	if _, err := goldap.DialURL(s.URL); err == nil {
		t.Fatal("dial succeeded while slapd is stopped")
	}
	s.Stop() // stopping twice is harmless
	s.Start()
	c = adminConn(t, s)
	if n := count(t, c, s.BaseDN, "(mail=x@example.com)"); n != 1 {
		t.Fatalf("after restart: %d entries, want the data kept", n)
	}
}

// TestExampleLDIFWithLdapadd loads the shipped example data with the real
// ldapadd, exactly as the file comments tell admins to, and checks every
// documented password with a real bind.
func TestExampleLDIFWithLdapadd(t *testing.T) {
	ldapadd := RequireBinary(t, "ldapadd")
	ldapwhoami := RequireBinary(t, "ldapwhoami")
	s := StartSlapd(t)
	for _, f := range []string{"ldif/example.ldif", "ldif/example-vmail.ldif"} {
		out, err := exec.Command(ldapadd, "-x", "-H", s.URL, "-D", s.AdminDN, "-w", s.AdminPassword,
			"-f", repoFile(t, f)).CombinedOutput()
		if err != nil {
			t.Fatalf("ldapadd -f %s: %v\n%s", f, err, out)
		}
	}
	c := adminConn(t, s)
	if n := count(t, c, "ou=people,"+s.BaseDN, "(objectClass=inetOrgPerson)"); n != 6 {
		t.Errorf("%d people, want 6", n)
	}
	if n := count(t, c, s.BaseDN, "(vmailActive=FALSE)"); n != 1 {
		t.Errorf("%d disabled accounts, want 1", n)
	}
	for _, user := range []string{"alice@example.com", "bob@example.com", "carol@example.org", "dave@example.org", "erin@example.com", "frank@example.org"} {
		dn := "uid=" + user + ",ou=people," + s.BaseDN
		local, _, _ := strings.Cut(user, "@")
		out, err := exec.Command(ldapwhoami, "-x", "-H", s.URL, "-D", dn, "-w", local+"-secret").CombinedOutput()
		if err != nil {
			t.Errorf("bind as %s with the documented password: %v\n%s", user, err, out)
		}
		if err := exec.Command(ldapwhoami, "-x", "-H", s.URL, "-D", dn, "-w", "wrong").Run(); err == nil {
			t.Errorf("bind as %s with a wrong password succeeded", user)
		}
	}
}

func BenchmarkStartSlapd(b *testing.B) {
	for i := 0; i < b.N; i++ {
		s := StartSlapd(b)
		s.Stop()
	}
}
