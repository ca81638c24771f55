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
