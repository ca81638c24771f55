package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// dirState is every name under dir with its size and modification time,
// to prove a command wrote nothing there.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	state := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		state[p] = fmt.Sprintf("%v %d %v", fi.Mode(), fi.Size(), fi.ModTime())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// TestConfigCheckReportsEverything: a file with many different errors,
// two of them dead servers, gets all of them named in one run, and the
// check creates nothing (no data folder, no SQLite file).
func TestConfigCheckReportsEverything(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	yaml := fmt.Sprintf(`data_dir: %s
userdb:
  accounts: ldap
  password_scheme: SSHA
ldap:
  urls: [ldap://127.0.0.1:1, ldap://127.0.0.1:2]
  base_dn: ou=people,dc=example,dc=com
  bind_dn: cn=admin,dc=example,dc=com
  bind_password: bind-secret
queue:
  port: 99999
smtp:
  max_message_bytes: ten megabytes
  mynetwork: [10.0.0.0/8]
listen:
  smtp: "127.0.0.1:25"
`, data)
	path := filepath.Join(dir, "vmaild.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	before := dirState(t, dir)
	c := &cli{t: t, configPath: path}
	msg := c.fails("", "config", "check")
	want := []string{
		"unknown key(s): smtp.mynetwork",
		"queue.port: 99999 is out of range: a TCP port, 1 to 65535",
		`smtp.max_message_bytes: "ten megabytes": expected a size like 10M`,
		"listen.smtp: expected a mapping with address",
		"ldap ldap://127.0.0.1:1 unreachable",
		"ldap ldap://127.0.0.1:2 unreachable",
	}
	wantLines(t, "config check", msg, want...)
	if !strings.HasPrefix(msg, fmt.Sprintf("%d problem(s):", len(want))) {
		t.Errorf("config check counts the problems wrong:\n%s", msg)
	}
	wantLines(t, "config check", c.transcript.String(), "sql (sqlite): no database at")
	if strings.Contains(c.transcript.String(), "bind-secret") {
		t.Errorf("config check printed the bind password:\n%s", c.transcript.String())
	}
	if after := dirState(t, dir); !reflect.DeepEqual(before, after) {
		t.Errorf("config check changed %s:\nbefore %v\nafter  %v", dir, before, after)
	}
}

// TestConfigShow prints the effective configuration with every secret
// masked, as text and as JSON that round-trips.
func TestConfigShow(t *testing.T) {
	dir := t.TempDir()
	secrets := []string{"bind-secret", "relay-secret", "srs-secret-1", "dsn-secret", "url-secret"}
	c := newCLI(t, fmt.Sprintf(`data_dir: %s
sql:
  driver: mysql
  dsn: vmaild:dsn-secret@tcp(db.example.com:3306)/vmaild
ldap:
  urls: [ldap://reader:url-secret@ldap.example.com]
  bind_password: bind-secret
queue:
  smarthost:
    address: relay.example.com:587
    password: relay-secret
srs:
  secrets: [srs-secret-1]
smtp:
  max_message_bytes: 10M
`, dir))
	c.secrets = append(c.secrets, secrets...)
	out := c.ok("", "config", "show")
	wantLines(t, "config show", out,
		"sql.dsn: vmaild:********@tcp(db.example.com:3306)/vmaild",
		"ldap.bind_password: ********",
		"queue.smarthost.password: ********",
		"srs.secrets: [********]",
		"ldap.urls: [ldap://reader:********@ldap.example.com]",
		"smtp.max_message_bytes: 10M",
		"queue.port: 25",
		"shutdown_timeout: 30s")
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("config show prints %q:\n%s", s, out)
		}
	}

	changed := c.ok("", "config", "show", "-n")
	wantLines(t, "config show -n", changed, "smtp.max_message_bytes: 10M", "sql.driver: mysql")
	refuseLines(t, "config show -n", changed, "queue.port: 25", "shutdown_timeout: 30s")

	js := c.ok("", "config", "show", "--json")
	var got map[string]any
	if err := json.Unmarshal([]byte(js), &got); err != nil {
		t.Fatalf("config show --json does not parse: %v\n%s", err, js)
	}
	if got["smtp.max_message_bytes"] != "10M" || got["queue.port"] != float64(25) || got["ldap.bind_password"] != masked {
		t.Errorf("config show --json: %v", got)
	}
	again, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(again, &back); err != nil || !reflect.DeepEqual(got, back) {
		t.Errorf("config show --json does not round-trip: %v", err)
	}
	if len(got) != len(configKeys(defaultConfig())) {
		t.Errorf("config show --json has %d keys, the configuration %d", len(got), len(configKeys(defaultConfig())))
	}
}

// TestSecretKeysMasked holds every key that looks like a secret to
// maskSecret, so a new password key cannot be printed in clear.
func TestSecretKeysMasked(t *testing.T) {
	for _, k := range configKeys(defaultConfig()) {
		last := k.Name[strings.LastIndex(k.Name, ".")+1:]
		switch {
		case strings.HasPrefix(k.Name, "ldap.attributes."), strings.HasPrefix(k.Name, "sql.queries."),
			strings.HasSuffix(last, "_file"), k.Name == "userdb.password_scheme":
			continue // attribute names, queries, paths, a scheme name
		}
		if (strings.Contains(last, "password") || strings.Contains(last, "secret")) && !isSecretKey(k.Name) {
			t.Errorf("%s looks like a secret but config show would print it", k.Name)
		}
	}
}
