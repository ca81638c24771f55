package imap

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/vmaild/vmaild/backend/store"
)

// TestImaptestListGroups runs imaptest's compliance scripts on mailbox
// names and LIST (list, listext, subscribe, mutf7, atoms) against
// list.go behind wire's parser (listLoop) and wants every one to pass.
// It takes a second; it runs when IMAPTEST names the binary, or with
// VMAILD_IMAPTEST=1 as TestImaptestStress does.
func TestImaptestListGroups(t *testing.T) {
	if os.Getenv("IMAPTEST") == "" && os.Getenv("VMAILD_IMAPTEST") != "1" {
		t.Skip("imaptest compliance groups: set IMAPTEST=binary or VMAILD_IMAPTEST=1")
	}
	bin := imaptestBinary(t)
	src := filepath.Join(filepath.Dir(bin), "tests")
	dir := t.TempDir()
	groups := []string{"list", "listext", "subscribe", "mutf7", "atoms"}
	for _, g := range groups {
		data, err := os.ReadFile(filepath.Join(src, g))
		if err != nil {
			t.Fatalf("imaptest script %s: %v", g, err)
		}
		if err := os.WriteFile(filepath.Join(dir, g), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := serveListLoop(t, &store.Store{Root: t.TempDir(), Hostname: "test"})
	host, port := splitHostPort(t, addr)
	cmd := exec.Command(bin, "host="+host, "port="+port, "user="+testUser, "pass="+testPass, "test="+dir)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH=/usr/lib/dovecot")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("imaptest:\n%s", tail(out.String(), 60))
	if err != nil {
		t.Fatalf("imaptest: %v", err)
	}
	m := regexp.MustCompile(`(\d+) test groups: (\d+) failed`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no imaptest summary in its output")
	}
	if m[2] != "0" {
		t.Errorf("%s of %s test groups failed", m[2], m[1])
	}
}
