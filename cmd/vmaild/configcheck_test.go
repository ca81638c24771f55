package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/internal/testsrv"
)

// TestConfigCheck runs `vmaild config check` on good and bad
// configurations against a real mariadbd and slapd, and stops each server
// to see it named as unreachable.
func TestConfigCheck(t *testing.T) {
	m := testsrv.StartMariaDB(t)
	slapd := testsrv.StartSlapd(t)
	dsn := m.DSN
	good := ldapConfig(t.TempDir(), slapd, "sql:\n  driver: mysql\n  dsn: \""+dsn+"\"")
	// A DSN the MySQL driver cannot parse (no closing parenthesis).
	const badDSN = "vmaild:dsn-secret@tcp(127.0.0.1:3306/vmaild"

	newCheckCLI := func(t *testing.T, yaml string) *cli {
		c := newCLI(t, yaml)
		// The servers' passwords must not leak into any report either.
		c.secrets = append(c.secrets, m.Password, slapd.AdminPassword, "dsn-secret")
		return c
	}

	t.Run("valid", func(t *testing.T) {
		c := newCheckCLI(t, good)
		// A MySQL schema is the admin's to apply; the check says so.
		wantLines(t, "config check before db migrate", c.fails("", "config", "check"),
			"sql (mysql): reachable, but the schema lacks 0001", "run `vmaild db migrate`")
		c.ok("", "db", "migrate")
		wantLines(t, "config check", c.ok("", "config", "check"),
			"configuration: ok", "sql (mysql): reachable", "ldap "+slapd.URL+": reachable")
	})
	t.Run("valid sqlite", func(t *testing.T) {
		data := filepath.Join(t.TempDir(), "data")
		c := newCheckCLI(t, sqliteConfig(data))
		wantLines(t, "config check", c.ok("", "config", "check"), "configuration: ok", "sql (sqlite): no database at "+data)
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Errorf("config check created the data folder %s (%v)", data, err)
		}
		c.ok("", "db", "migrate")
		wantLines(t, "config check", c.ok("", "config", "check"), "configuration: ok", "sql (sqlite): reachable")
	})

	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", good + "smtp:\n  mynetwork: [10.0.0.0/8]\nlisten:\n  imap:\n    adress: \":143\"\n",
			[]string{"unknown key(s)", "listen.imap.adress", "smtp.mynetwork"}},
		{"malformed mysql dsn", strings.Replace(good, dsn, badDSN, 1),
			[]string{"sql.dsn: malformed MySQL DSN"}},
		{"empty mysql dsn", "sql:\n  driver: mysql\n", []string{"sql.dsn: empty"}},
		{"unknown sql driver", "sql:\n  driver: postgres\n", []string{`sql.driver: "postgres" is not sqlite or mysql`}},
		{"ldap url without scheme", strings.Replace(good, slapd.URL, "ldap.example.com", 1),
			[]string{`ldap.urls: "ldap.example.com": scheme must be ldap or ldaps`}},
		{"ldap url of another scheme", strings.Replace(good, slapd.URL, "http://ldap.example.com", 1),
			[]string{`ldap.urls: "http://ldap.example.com": scheme must be ldap or ldaps`}},
		{"malformed ldap url", strings.Replace(good, slapd.URL, `"ldap://[::1"`, 1),
			[]string{`ldap.urls: malformed URL "ldap://[::1"`}},
		{"ldap url without host", strings.Replace(good, slapd.URL, "ldap://", 1),
			[]string{`ldap.urls: "ldap://": no host`}},
		{"bad mynetworks", good + "smtp:\n  mynetworks: [127.0.0.0/8, 10.0.0.0/33, example.com]\n",
			[]string{`smtp.mynetworks: "10.0.0.0/33" is not a CIDR prefix`, `smtp.mynetworks: "example.com" is not a CIDR prefix`}},
		{"bad limits", good + "limits:\n  exempt_networks: [webmail]\n",
			[]string{`limits.exempt_networks: "webmail" is not a CIDR prefix`}},
		{"unknown password scheme", strings.Replace(good, "password_scheme: SSHA", "password_scheme: ROT13", 1),
			[]string{"userdb.password_scheme:", "ROT13"}},
		{"login service", strings.Replace(good, "password_scheme: SSHA", "password_scheme: ARGON2ID", 1) +
			"login:\n  hashes:\n    max_argon2_memory: 8192\n    max_bcrypt_cost: 40\n  penalty_cap: 2m\nclient_networks:\n  ipv6_prefix: 129\n",
			[]string{"login.hashes: the caps refuse the hashes userdb.password_scheme writes", "login.hashes.max_bcrypt_cost 40",
				"login.penalty_cap: 2m0s is longer than a client waits", "client_networks.ipv6_prefix: 129"}},
		{"bad srs keys", good + "srs:\n  separator: \"#\"\n  domain: \"not a domain\"\n",
			[]string{`srs.domain: "not a domain"`}},
		{"bad srs separator", good + "srs:\n  separator: \"#\"\n  max_age_days: 2000\n",
			[]string{`srs: separator "#" is not =, + or -`}},
		{"several problems at once", strings.Replace(strings.Replace(good, dsn, badDSN, 1), "password_scheme: SSHA", "password_scheme: ROT13", 1) +
			"smtp:\n  mynetworks: [10.0.0.0/33]\n",
			[]string{"sql.dsn: malformed MySQL DSN", "ROT13", `"10.0.0.0/33"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCheckCLI(t, tc.yaml)
			msg := c.fails("", "config", "check")
			wantLines(t, "config check", msg, tc.want...)
			refuseLines(t, "config check", c.transcript.String(), "configuration: ok")
		})
	}

	t.Run("environment overrides the file", func(t *testing.T) {
		c := newCheckCLI(t, good)
		t.Setenv("VMAILD_SQL_DSN", badDSN)
		wantLines(t, "VMAILD_SQL_DSN", c.fails("", "config", "check"), "sql.dsn: malformed MySQL DSN")
		os.Unsetenv("VMAILD_SQL_DSN") // set and empty would mean an empty DSN
		// Both ways round: a bad value in the file, a good one in the
		// environment.
		c = newCheckCLI(t, good+"smtp:\n  mynetworks: [10.0.0.0/33]\n")
		t.Setenv("VMAILD_SMTP_MYNETWORKS", "127.0.0.0/8,::1/128")
		wantLines(t, "VMAILD_SMTP_MYNETWORKS", c.ok("", "config", "check"), "configuration: ok")
		os.Unsetenv("VMAILD_SMTP_MYNETWORKS")
		t.Setenv("VMAILD_LDAP_URLS", "ldap://127.0.0.1:1")
		wantLines(t, "VMAILD_LDAP_URLS", c.fails("", "config", "check", "--smtp.mynetworks", "127.0.0.0/8"), "ldap ldap://127.0.0.1:1 unreachable")
	})
	t.Run("flags override the file and the environment", func(t *testing.T) {
		c := newCheckCLI(t, good)
		wantLines(t, "--sql.dsn", c.fails("", "config", "check", "--sql.dsn", badDSN), "sql.dsn: malformed MySQL DSN")
		wantLines(t, "--smtp.mynetworks", c.fails("", "config", "check", "--smtp.mynetworks", "10.0.0.0/33"), `"10.0.0.0/33" is not a CIDR prefix`)
		t.Setenv("VMAILD_SQL_DSN", badDSN)
		wantLines(t, "--sql.dsn over VMAILD_SQL_DSN", c.ok("", "config", "check", "--sql.dsn", dsn), "sql (mysql): reachable")
	})
	t.Run("VMAILD_CONFIG names the file", func(t *testing.T) {
		c := newCheckCLI(t, strings.Replace(good, "password_scheme: SSHA", "password_scheme: ROT13", 1))
		t.Setenv("VMAILD_CONFIG", c.configPath)
		_, _, err := runRoot(t, &c.transcript, "", "config", "check")
		if err == nil || !strings.Contains(err.Error(), "ROT13") {
			t.Errorf("config check with VMAILD_CONFIG: %v, want the file's bad scheme named", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, _, err := runRoot(t, nil, "", "-c", filepath.Join(t.TempDir(), "nope.yaml"), "config", "check")
		if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
			t.Errorf("missing config file: %v", err)
		}
	})

	// Servers going away: each is named. LDAP first, because the SQL check
	// comes first and would hide it.
	t.Run("slapd stopped", func(t *testing.T) {
		slapd.Stop()
		c := newCheckCLI(t, good)
		wantLines(t, "config check", c.fails("", "config", "check"), "ldap "+slapd.URL+" unreachable")
		wantLines(t, "config check", c.transcript.String(), "sql (mysql): reachable")
	})
	t.Run("mariadbd stopped", func(t *testing.T) {
		m.Stop()
		c := newCheckCLI(t, good)
		wantLines(t, "config check", c.fails("", "config", "check"), "sql (mysql) unreachable")
	})
}
