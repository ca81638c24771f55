package main

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var updateConfigDoc = flag.Bool("update-config-md", false, "rewrite CONFIG.md from configReference")

// TestConfigDocUpToDate fails when CONFIG.md is not what the Config struct
// generates, so a new or changed key cannot ship undocumented.
func TestConfigDocUpToDate(t *testing.T) {
	path := filepath.Join("..", "..", "CONFIG.md")
	want := configReference()
	if *updateConfigDoc {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (create it with: %s)", err, configDocRegenerate)
	}
	if string(got) == want {
		return
	}
	gotLines, wantLines := strings.Split(string(got), "\n"), strings.Split(want, "\n")
	for i := 0; i < len(gotLines) || i < len(wantLines); i++ {
		var g, w string
		if i < len(gotLines) {
			g = gotLines[i]
		}
		if i < len(wantLines) {
			w = wantLines[i]
		}
		if g != w {
			t.Fatalf("CONFIG.md is out of date; regenerate it with:\n\t%s\nfirst difference at line %d:\n\tfile: %s\n\tcode: %s",
				configDocRegenerate, i+1, g, w)
		}
	}
}

// TestConfigDocEveryKeyExplained makes a key without a help tag a failure
// rather than a blank cell.
func TestConfigDocEveryKeyExplained(t *testing.T) {
	for _, k := range configKeys(defaultConfig()) {
		if keyHelp(k) == "" {
			t.Errorf("%s has no meaning: add a help:\"…\" tag to its field", k.Name)
		}
	}
	keys := map[string]bool{}
	for _, k := range configKeys(defaultConfig()) {
		keys[k.Name] = true
	}
	for name := range machineDefaults {
		if !keys[name] {
			t.Errorf("machineDefaults describes %s, which is no longer a key", name)
		}
	}
	for section := range configSections {
		if section == "" {
			continue
		}
		found := false
		for name := range keys {
			if strings.HasPrefix(name, section+".") {
				found = true
			}
		}
		if !found {
			t.Errorf("configSections introduces %s, which has no keys", section)
		}
	}
}

// TestConfigDocDoesNotDependOnMachine: CONFIG.md is committed, so the
// host name and $VMAILD_DATA of whoever regenerates it must not leak in.
func TestConfigDocDoesNotDependOnMachine(t *testing.T) {
	t.Setenv("VMAILD_DATA", "")
	plain := configReference()
	t.Setenv("VMAILD_DATA", "/srv/elsewhere")
	if configReference() != plain {
		t.Error("configReference depends on $VMAILD_DATA")
	}
	t.Setenv("VMAILD_DATA", "")
	def := defaultConfig()
	if !strings.Contains(machineDefaults["data_dir"], "`"+def.DataDir+"`") {
		t.Errorf("data_dir is documented as %q, but defaults to %q", machineDefaults["data_dir"], def.DataDir)
	}
	if host, _ := os.Hostname(); host != "" && strings.Contains(plain, "`"+host+"`") {
		t.Errorf("the reference contains this machine's host name %q", host)
	}
}

// TestConfigDocEnvironmentSyntax proves what CONFIG.md promises about the
// environment: lists are comma-separated, durations in Go syntax, nested
// keys by underscores.
func TestConfigDocEnvironmentSyntax(t *testing.T) {
	t.Setenv("VMAILD_DATA", t.TempDir())
	t.Setenv("VMAILD_SMTP_MYNETWORKS", "127.0.0.0/8,192.0.2.0/24")
	t.Setenv("VMAILD_QUEUE_MAX_AGE", "48h")
	t.Setenv("VMAILD_LISTEN_SMTP_ADDRESS", ":25")
	t.Setenv("VMAILD_LDAP_URLS", "ldap://a.example,ldap://b.example")
	t.Setenv("VMAILD_SQL_QUERIES_ALIASES", "SELECT goto FROM alias WHERE address = :source")
	cfg, err := loadConfig("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"127.0.0.0/8", "192.0.2.0/24"}; !reflect.DeepEqual(cfg.SMTP.MyNetworks, want) {
		t.Errorf("smtp.mynetworks = %q, want %q", cfg.SMTP.MyNetworks, want)
	}
	if cfg.Queue.MaxAge != 48*time.Hour {
		t.Errorf("queue.max_age = %v, want 48h", cfg.Queue.MaxAge)
	}
	if cfg.Listen.SMTP.Address != ":25" {
		t.Errorf("listen.smtp.address = %q", cfg.Listen.SMTP.Address)
	}
	if want := []string{"ldap://a.example", "ldap://b.example"}; !reflect.DeepEqual(cfg.LDAP.URLs, want) {
		t.Errorf("ldap.urls = %q, want %q", cfg.LDAP.URLs, want)
	}
	if !strings.Contains(cfg.SQL.Queries.Aliases, ":source") {
		t.Errorf("sql.queries.aliases = %q", cfg.SQL.Queries.Aliases)
	}
}
