package sievestore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/backend/sieve"
)

// TestAdminScripts: global and per-domain before/after scripts come in
// run order around the user's active one, each compiled once until its
// file changes; a per-domain file may be missing, a global one may not.
func TestAdminScripts(t *testing.T) {
	adm := t.TempDir()
	write := func(p, src string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	global := filepath.Join(adm, "spam.sieve")
	write(global, "require \"fileinto\";\nif header :contains \"x-spam\" \"yes\" { fileinto \"Junk\"; }\n")
	write(filepath.Join(adm, "example.com", "after.sieve"), "keep;")
	a := &Admin{
		Before: []string{global, filepath.Join(adm, "%d", "before.sieve")},
		After:  []string{filepath.Join(adm, "%d", "after.sieve")},
	}
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
	me := Scripts{Home: t.TempDir()}
	if err := me.Put("mine", []byte("discard;"), sieve.Options{}); err != nil {
		t.Fatal(err)
	}
	me.Activate("mine")
	you := Scripts{Home: t.TempDir()}

	b1, p1, a1, err := a.Scripts(me, "Example.COM")
	if err != nil || len(b1) != 1 || p1 == nil || len(a1) != 1 {
		t.Fatalf("me: %d before, %v, %d after, %v", len(b1), p1, len(a1), err)
	}
	b2, p2, a2, err := a.Scripts(you, "other.org")
	if err != nil || len(b2) != 1 || p2 != nil || len(a2) != 0 {
		t.Fatalf("you: %d before, %v, %d after, %v", len(b2), p2, len(a2), err)
	}
	if b1[0] != b2[0] {
		t.Error("the global script was compiled twice")
	}
	seq, err := a.Sequence(me, "example.com")
	if err != nil || len(seq) != 3 || seq[0] != b1[0] || seq[1] != p1 || seq[2] != a1[0] {
		t.Errorf("Sequence: %v, %v", seq, err)
	}
	// Run in order: before files spam into Junk, which ends the sequence.
	res, err := sieve.RunAll(t.Context(), seq, sieve.Env{}, sieve.ParseMessage([]byte("X-Spam: yes\r\n\r\nbody\r\n")))
	if err != nil || len(res.Actions) != 1 || res.Actions[0].Mailbox != "Junk" {
		t.Errorf("RunAll: %v, %v", res, err)
	}

	// A changed file is compiled again; a broken one is an error naming it.
	write(global, "frob;")
	if _, _, _, err := a.Scripts(me, "example.com"); err == nil || !strings.Contains(err.Error(), "spam.sieve") {
		t.Errorf("broken global script: %v", err)
	}
	a.Before = []string{filepath.Join(adm, "missing.sieve")}
	if err := a.Check(); err == nil {
		t.Error("a missing global script passes Check")
	}
	if _, _, _, err := a.Scripts(you, "example.com"); err == nil {
		t.Error("a missing global script passes Scripts")
	}
}
