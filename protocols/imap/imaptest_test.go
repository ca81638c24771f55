package imap

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/testdovecot"
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

// TestImaptestCompliance runs Dovecot's imaptest compliance scripts (the
// tests directory beside the imaptest binary, or IMAPTEST_TESTS), one
// imaptest run per script so each group has its own verdict: a subtest
// per group. A group whose "capabilities:" header names something the
// server does not advertise after login is skipped with that reason, the
// decision imaptest itself makes (it would report the group as skipped).
// It runs only with VMAILD_IMAPTEST=1, like TestImaptestStress; with
// VMAILD_IMAPTEST_DOVECOT=1 too, the scripts run against a private
// Dovecot instead, which proves the harness: Dovecot passes them all.
func TestImaptestCompliance(t *testing.T) {
	if os.Getenv("VMAILD_IMAPTEST") != "1" {
		t.Skip("imaptest compliance run: set VMAILD_IMAPTEST=1 (and IMAPTEST=binary, or have shared/tools/imaptest/build.sh)")
	}
	bin := imaptestBinary(t)
	dir := os.Getenv("IMAPTEST_TESTS")
	if dir == "" {
		dir = filepath.Join(filepath.Dir(bin), "tests")
	}
	groups, err := imaptestGroups(dir)
	if err != nil {
		t.Fatal(err)
	}
	addr, user, pass := "", testUser, testPass
	if os.Getenv("VMAILD_IMAPTEST_DOVECOT") == "1" {
		d := testdovecot.Start(t)
		addr, user, pass = d.Addr, d.User, d.Password
	} else {
		addr = newEnv(t).addr
	}
	caps, err := postLoginCaps(addr, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("capabilities after login: %s", strings.Join(caps, " "))
	host, port := splitHostPort(t, addr)
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			if missing := g.missing(caps); len(missing) > 0 {
				t.Skipf("capability not advertised: %s", strings.Join(missing, " "))
			}
			if g.needsUser2 {
				t.Skip("needs a second user ($user2)")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "host="+host, "port="+port, "user="+user, "pass="+pass, "test="+g.path)
			cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH=/usr/lib/dovecot")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			runErr := cmd.Run()
			r := parseImaptestRun(out.String())
			switch {
			case ctx.Err() != nil:
				t.Fatalf("imaptest did not finish in time:\n%s", tail(out.String(), 40))
			case !r.summarised:
				t.Fatalf("imaptest: %v, no summary:\n%s", runErr, tail(out.String(), 40))
			case r.failed > 0 || len(r.failures) > 0:
				// "Error:" lines are protocol violations imaptest saw
				// besides the script's own checks.
				t.Errorf("group failed (imaptest: %d group failed; %s; %s):\n%s", r.failed, r.base, r.ext, strings.Join(r.failures, "\n"))
			case r.skipped > 0:
				t.Skipf("imaptest skipped the group for a missing capability")
			case runErr != nil:
				t.Errorf("imaptest: %v\n%s", runErr, tail(out.String(), 40))
			default:
				t.Logf("%s; %s", r.base, r.ext)
			}
		})
	}
}

// imaptestGroup is one compliance script.
type imaptestGroup struct {
	name, path string
	caps       []string // the "capabilities:" header
	needsUser2 bool     // imaptest skips it unless given user2=
}

// missing returns the required capabilities not in have, compared without
// regard to case as imaptest does.
func (g imaptestGroup) missing(have []string) []string {
	var out []string
	for _, c := range g.caps {
		found := false
		for _, h := range have {
			if strings.EqualFold(c, h) {
				found = true
				break
			}
		}
		if !found {
			out = append(out, c)
		}
	}
	return out
}

// imaptestGroups lists the scripts in dir: every plain file but the .mbox
// fixtures, with the header lines (up to the first blank line) read.
func imaptestGroups(dir string) ([]imaptestGroup, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("imaptest scripts: %w", err)
	}
	var groups []imaptestGroup
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), ".mbox") {
			continue
		}
		g := imaptestGroup{name: e.Name(), path: filepath.Join(dir, e.Name())}
		data, err := os.ReadFile(g.path)
		if err != nil {
			return nil, fmt.Errorf("imaptest script: %w", err)
		}
		head, _, _ := strings.Cut(string(data), "\n\n")
		for _, l := range strings.Split(head, "\n") {
			key, val, ok := strings.Cut(l, ":")
			switch {
			case !ok:
			case strings.TrimSpace(key) == "capabilities":
				g.caps = strings.Fields(val)
			case strings.Contains(val, "$user2") || strings.Contains(val, "${user2}"):
				g.needsUser2 = true
			}
		}
		groups = append(groups, g)
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("no imaptest scripts in %s", dir)
	}
	return groups, nil
}

// imaptestRun is what one compliance run printed.
type imaptestRun struct {
	summarised      bool
	failed, skipped int
	base, ext       string   // "N/M individual commands failed" lines
	failures        []string // "*** Test ..." blocks and "Error:" lines
}

var groupSummary = regexp.MustCompile(`(?m)^\d+ test groups: (\d+) failed, (\d+) skipped`)

// parseImaptestRun reads imaptest's compliance output: a "*** Test NAME
// command I/N (line L)" block per failure (with " - failed:" and
// " - Command:" lines, up to a blank line), "Error:" lines for protocol errors, then the
// summary "N test groups: F failed, S skipped due to missing
// capabilities" and the base protocol and extensions counts.
func parseImaptestRun(out string) imaptestRun {
	var r imaptestRun
	if m := groupSummary.FindStringSubmatch(out); m != nil {
		r.summarised = true
		fmt.Sscan(m[1], &r.failed)
		fmt.Sscan(m[2], &r.skipped)
	}
	lines := strings.Split(out, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "base protocol: "):
			r.base = l
		case strings.HasPrefix(l, "extensions: "):
			r.ext = l
		case strings.HasPrefix(l, "Error: "):
			r.failures = append(r.failures, l)
		case strings.HasPrefix(l, "*** Test "):
			block := []string{l}
			// The block ends with a blank line; its detail lines
			// start " - " but may carry a server line of their own.
			for i+1 < len(lines) && strings.TrimSpace(lines[i+1]) != "" {
				i++
				block = append(block, lines[i])
			}
			r.failures = append(r.failures, strings.Join(block, "\n"))
		}
	}
	return r
}

// postLoginCaps logs in and returns the server's CAPABILITY list, the one
// imaptest compares a script's requirements with.
func postLoginCaps(addr, user, pass string) ([]string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	if _, err := br.ReadString('\n'); err != nil {
		return nil, fmt.Errorf("greeting: %w", err)
	}
	fmt.Fprintf(c, "a LOGIN %q %q\r\nb CAPABILITY\r\nc LOGOUT\r\n", user, pass)
	var caps []string
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("CAPABILITY: %w", err)
		}
		l = strings.TrimRight(l, "\r\n")
		switch {
		case strings.HasPrefix(l, "* CAPABILITY "):
			caps = strings.Fields(strings.TrimPrefix(l, "* CAPABILITY "))
		case strings.HasPrefix(l, "a ") && !strings.HasPrefix(l, "a OK"):
			return nil, fmt.Errorf("LOGIN: %s", l)
		case strings.HasPrefix(l, "b "):
			if caps == nil {
				return nil, fmt.Errorf("CAPABILITY: %s", l)
			}
			return caps, nil
		}
	}
}
