package imap

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestImaptestStress runs Dovecot's imaptest in its stress mode (10
// clients for 30 s, the default mix of SELECT, FETCH, STORE, EXPUNGE,
// COPY and APPEND on one folder) against a test server and wants 0
// errors, as Dovecot itself reports. It runs only with VMAILD_IMAPTEST=1
// (it needs imaptest, which CI machines do not build): IMAPTEST names the
// binary, or shared/tools/imaptest/build.sh beside one of the parent
// directories builds it. See README.md, Testing.
func TestImaptestStress(t *testing.T) {
	if os.Getenv("VMAILD_IMAPTEST") != "1" {
		t.Skip("imaptest stress run: set VMAILD_IMAPTEST=1 (and IMAPTEST=binary, or have shared/tools/imaptest/build.sh)")
	}
	bin := imaptestBinary(t)
	e := newEnv(t)
	host, port := splitHostPort(t, e.addr)
	mbox := filepath.Join(t.TempDir(), "sample.mbox")
	if err := os.WriteFile(mbox, sampleMbox(200), 0o600); err != nil {
		t.Fatal(err)
	}
	secs := 30
	cmd := exec.Command(bin, "host="+host, "port="+port, "user="+testUser, "pass="+testPass,
		"mbox="+mbox, "clients=10", fmt.Sprintf("secs=%d", secs))
	// Debian's libdovecot lives outside the loader's default path.
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH=/usr/lib/dovecot")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("imaptest ran %v", time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("imaptest: %v\n%s", err, tail(out.String(), 40))
	}
	errs := imaptestErrors(out.String())
	t.Logf("imaptest stress: %d errors; last lines:\n%s", len(errs), tail(out.String(), 6))
	if len(errs) > 0 {
		t.Errorf("imaptest stress: %d errors, want 0; first ones:\n%s", len(errs), strings.Join(errs[:min(len(errs), 20)], "\n"))
	}
}

// imaptestErrors returns imaptest's error reports, one line each.
func imaptestErrors(out string) []string {
	var errs []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Error: ") {
			errs = append(errs, l)
		}
	}
	return errs
}

func imaptestBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("IMAPTEST"); bin != "" {
		return bin
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		script := filepath.Join(dir, "shared", "tools", "imaptest", "build.sh")
		if _, err := os.Stat(script); err != nil {
			continue
		}
		out, err := exec.Command(script).Output()
		if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		lines := strings.Fields(string(out))
		return lines[len(lines)-1]
	}
	t.Skip("imaptest stress run: no IMAPTEST binary and no shared/tools/imaptest/build.sh above the working directory")
	return ""
}

// sampleMbox returns n small distinct messages in mbox format, the
// material imaptest APPENDs.
func sampleMbox(n int) []byte {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "From sender%d@example.com Thu Jan  1 00:00:00 2026\n", i)
		fmt.Fprintf(&b, "From: Sender %d <sender%d@example.com>\nTo: alice@example.org\n", i, i)
		fmt.Fprintf(&b, "Subject: sample %d\nDate: Thu, 1 Jan 2026 00:%02d:00 +0000\n", i, i%60)
		fmt.Fprintf(&b, "Message-ID: <%d@example.com>\n\n", i)
		for j := 0; j <= i%7; j++ {
			fmt.Fprintf(&b, "Line %d of message %d.\n", j, i)
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

var blankRun = regexp.MustCompile(`\n{2,}`)

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(blankRun.ReplaceAllString(s, "\n")), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
