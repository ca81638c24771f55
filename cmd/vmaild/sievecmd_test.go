package main

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/internal/pigeonhole"
)

// TestSieveTestCommand: `vmaild sieve test` prints what Pigeonhole's
// sieve-test prints, for a user's active script found in the Dovecot
// layout and for --script, over a sample of the interpreter's corpus.
func TestSieveTestCommand(t *testing.T) {
	o := pigeonhole.New(t)
	data := t.TempDir()
	c := newCLI(t, sqliteConfig(data))
	c.ok("", "domain", "add", "example.com")
	c.ok("pw-sieve-1\n", "user", "add", "me@example.com", "--password-stdin")

	corpus := filepath.Join("..", "..", "backend", "sieve", "testdata")
	scripts, _ := filepath.Glob(filepath.Join(corpus, "scripts", "*.sieve"))
	msgs, _ := filepath.Glob(filepath.Join(corpus, "messages", "*.eml"))
	if len(scripts) == 0 || len(msgs) == 0 {
		t.Fatal("corpus not found")
	}
	sort.Strings(scripts)
	home := filepath.Join(data, "mail", "example.com", "me")
	if err := os.MkdirAll(filepath.Join(home, "sieve"), 0o755); err != nil {
		t.Fatal(err)
	}
	compare := func(name, out string, script, msg []byte) {
		t.Helper()
		got, err := pigeonhole.Parse(out)
		if err != nil {
			t.Fatalf("%s: our output does not parse: %v\n%s", name, err, out)
		}
		want, err := o.Test(script, msg, "sender@ex.org", "me@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, "\n") != strings.Join(want.Lines, "\n") {
			t.Errorf("%s:\n vmaild:     %q\n pigeonhole: %q\n%s", name, got, want.Lines, out)
		}
	}
	for i, sp := range scripts {
		if i%8 != 0 {
			continue
		}
		script, err := os.ReadFile(sp)
		if err != nil {
			t.Fatal(err)
		}
		mp := msgs[i%len(msgs)]
		msg, err := os.ReadFile(mp)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(sp) + " × " + filepath.Base(mp)
		out := c.ok("", "sieve", "test", "--from", "sender@ex.org", "--to", "me@example.com", "--script", sp, mp)
		compare("--script "+name, out, script, msg)

		// The same script as the user's active one: sieve/NAME.sieve and
		// the .dovecot.sieve link, as Pigeonhole keeps them.
		own := filepath.Join(home, "sieve", filepath.Base(sp))
		if err := os.WriteFile(own, script, 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(home, ".dovecot.sieve")
		os.Remove(link)
		if err := os.Symlink(filepath.Join("sieve", filepath.Base(sp)), link); err != nil {
			t.Fatal(err)
		}
		out = c.ok("", "sieve", "test", "--from", "sender@ex.org", "me@example.com", mp)
		compare("USER "+name, out, script, msg)
	}
}

func TestSieveCheckCommand(t *testing.T) {
	c := newCLI(t, sqliteConfig(t.TempDir()))
	dir := t.TempDir()
	good := filepath.Join(dir, "good.sieve")
	bad := filepath.Join(dir, "bad.sieve")
	os.WriteFile(good, []byte("require [\"fileinto\"];\nfileinto \"Junk\";\n"), 0o644)
	os.WriteFile(bad, []byte("require [\"fileinto\"];\nfileinto \"Junk\"\nkeep;\n"), 0o644)
	wantLines(t, "sieve check", c.ok("", "sieve", "check", good), "valid (requires: fileinto)")
	wantLines(t, "sieve check", c.fails("", "sieve", "check", bad), "bad.sieve: sieve: line 3:")
	wantLines(t, "sieve test", c.fails("", "sieve", "test", "nobody@example.com", good), "")
	wantLines(t, "sieve test", c.fails("", "sieve", "test", "--script", good, "x", "y"), "give USER and MESSAGE, or --script FILE and MESSAGE")
}

// TestSieveScriptCommands: put (refusing a script that does not compile,
// with its line), list, get, activate, check, test, deactivate, delete.
func TestSieveScriptCommands(t *testing.T) {
	data := t.TempDir()
	c := newCLI(t, sqliteConfig(data))
	c.ok("", "domain", "add", "example.com")
	c.ok("pw-sieve-2\n", "user", "add", "ann@example.com", "--password-stdin")
	spam := "require [\"fileinto\"];\nif header :contains \"subject\" \"viagra\" { fileinto \"Junk\"; }\n"
	// (Standard input is where this harness passes passwords.)
	dir := t.TempDir()
	spamFile, brokenFile := filepath.Join(dir, "spam.sieve"), filepath.Join(dir, "broken.sieve")
	os.WriteFile(spamFile, []byte(spam), 0o644)
	os.WriteFile(brokenFile, []byte("keep;\nfileinto \"x\";\n"), 0o644)
	wantLines(t, "sieve put", c.ok("", "sieve", "put", "ann@example.com", "spam", spamFile), "script spam stored for ann@example.com")
	wantLines(t, "sieve put", c.fails("", "sieve", "put", "ann@example.com", "broken", brokenFile), "broken: sieve: line 2: fileinto needs require \"fileinto\"")
	wantLines(t, "sieve list", c.ok("", "sieve", "list", "ann@example.com"), "spam  ", "NAME")
	if got := c.ok("", "sieve", "get", "ann@example.com", "spam"); got != spam {
		t.Errorf("sieve get = %q", got)
	}
	msg := filepath.Join(t.TempDir(), "m.eml")
	os.WriteFile(msg, []byte("From: x@example.net\nSubject: cheap viagra\n\nbuy\n"), 0o644)
	wantLines(t, "sieve test", c.fails("", "sieve", "test", "ann@example.com", msg), "has no active Sieve script")
	c.ok("", "sieve", "activate", "ann@example.com", "spam")
	home := filepath.Join(data, "mail", "example.com", "ann")
	if target, err := os.Readlink(filepath.Join(home, ".dovecot.sieve")); err != nil || target != "sieve/spam.sieve" {
		t.Errorf(".dovecot.sieve -> %q, %v", target, err)
	}
	wantLines(t, "sieve list", c.ok("", "sieve", "list", "ann@example.com"), "yes")
	wantLines(t, "sieve test", c.ok("", "sieve", "test", "ann@example.com", msg), "store message in folder: Junk")
	wantLines(t, "sieve check", c.ok("", "sieve", "check", "ann@example.com"), "spam: valid (requires: fileinto)")
	wantLines(t, "sieve delete", c.fails("", "sieve", "delete", "ann@example.com", "spam"), "script is active")
	c.ok("", "sieve", "deactivate", "ann@example.com")
	c.ok("", "sieve", "delete", "ann@example.com", "spam")
	if out := c.ok("", "sieve", "list", "ann@example.com"); strings.Contains(out, "spam") {
		t.Errorf("deleted script still listed:\n%s", out)
	}
}

// TestSievePutQuota: sieve put enforces the limits ManageSieve does
// (sieve.max_scripts, max_storage, max_script_size); replacing a script
// counts it once.
func TestSievePutQuota(t *testing.T) {
	data := t.TempDir()
	c := newCLI(t, sqliteConfig(data)+"sieve:\n  max_scripts: 2\n  max_storage: 30\n  max_script_size: 30\n")
	c.ok("", "domain", "add", "example.com")
	c.ok("pw-sieve-3\n", "user", "add", "ann@example.com", "--password-stdin")
	dir := t.TempDir()
	file := func(name, src string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(src), 0o644)
		return p
	}
	small, big := file("small", "keep;\n"), file("big", "# "+strings.Repeat("x", 40)+"\nkeep;\n")
	mid := file("mid", "# "+strings.Repeat("y", 20)+"\nkeep;\n")
	c.ok("", "sieve", "put", "ann@example.com", "one", small)
	c.ok("", "sieve", "put", "ann@example.com", "one", small)
	wantLines(t, "too big", c.fails("", "sieve", "put", "ann@example.com", "two", big), "two: a script of 49 octets exceeds the limit of 30")
	wantLines(t, "storage", c.fails("", "sieve", "put", "ann@example.com", "two", mid), "the scripts would take 35 octets, the limit is 30")
	c.ok("", "sieve", "put", "ann@example.com", "two", small)
	wantLines(t, "count", c.fails("", "sieve", "put", "ann@example.com", "three", small), "at most 2 scripts")
}

// TestSieveTestAdminScripts: sieve test USER runs what delivery runs,
// the administrator's delivery.sieve_before script included.
func TestSieveTestAdminScripts(t *testing.T) {
	data := t.TempDir()
	before := filepath.Join(t.TempDir(), "before.sieve")
	os.WriteFile(before, []byte("require [\"fileinto\"];\nif header :is \"x-spam-flag\" \"YES\" { fileinto \"Junk\"; }\n"), 0o644)
	c := newCLI(t, sqliteConfig(data)+"delivery:\n  sieve_before: ["+before+"]\n")
	c.ok("", "domain", "add", "example.com")
	c.ok("pw-sieve-3\n", "user", "add", "dan@example.com", "--password-stdin")
	msg := filepath.Join(t.TempDir(), "m.eml")
	os.WriteFile(msg, []byte("From: x@example.net\nX-Spam-Flag: YES\nSubject: offer\n\nbuy\n"), 0o644)
	wantLines(t, "sieve test", c.ok("", "sieve", "test", "dan@example.com", msg), "store message in folder: Junk")
}
