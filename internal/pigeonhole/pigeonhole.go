// Package pigeonhole runs Dovecot Pigeonhole's sieve-test and sievec, the
// reference Sieve implementation, as the oracle of vmaild's Sieve tests.
// Each Oracle has its own minimal dovecot.conf in a temporary directory,
// so nothing reads /etc/dovecot and no dovecot service runs.
//
// Its output is normalised to Lines, one action a line, so a test can
// compare it with what vmaild's interpreter decided:
//
//	store MAILBOX [flags=F1,F2] [create] [copy]   (flags lower-cased, sorted)
//	redirect ADDRESS [copy]
//	reject REASON
//	discard
//	vacation seconds=N [subject=S] [from=F] handle=H reason=R
//	implicit keep [flags=…]
//	error                                          (runtime error: implicit keep only)
package pigeonhole

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// Oracle runs sieve-test with a private configuration.
type Oracle struct {
	sieveTest, sievec string
	dir               string
	conf              string
	n                 atomic.Int64
}

// Spam and virus verdicts come from these header fields, scores out of
// SpamMax and VirusMax, as a scanner in front of Dovecot would write them.
const (
	SpamHeader  = "X-Spam-Score"
	SpamMax     = 10
	VirusHeader = "X-Virus-Score"
	VirusMax    = 5
)

// New finds sieve-test (a missing binary skips the test, or fails it with
// CI set) and writes the configuration.
func New(t testing.TB) *Oracle {
	t.Helper()
	o := &Oracle{sieveTest: requireBinary(t, "sieve-test"), sievec: requireBinary(t, "sievec")}
	o.dir = t.TempDir()
	// Run as root, Dovecot drops to mail_uid, which may not be root: the
	// directories must then be open to it.
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 65534, 65534
		for d := o.dir; d != "/" && d != "." && strings.HasPrefix(d, os.TempDir()) && d != os.TempDir(); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o777); err != nil {
				t.Fatal(err)
			}
		}
	}
	conf := fmt.Sprintf(`base_dir = %[1]s/run
log_path = /dev/stderr
info_log_path = /dev/stderr
mail_uid = %[2]d
mail_gid = %[3]d
mail_home = %[1]s/home
mail_location = maildir:%[1]s/home/Maildir
plugin {
  sieve_extensions = +vacation-seconds +spamtest +spamtestplus +virustest
  sieve_spamtest_status_type = score
  sieve_spamtest_status_header = %[4]s
  sieve_spamtest_max_value = %[5]d
  sieve_virustest_status_type = score
  sieve_virustest_status_header = %[6]s
  sieve_virustest_max_value = %[7]d
}
`, o.dir, uid, gid, SpamHeader, SpamMax, VirusHeader, VirusMax)
	o.conf = filepath.Join(o.dir, "dovecot.conf")
	if err := os.WriteFile(o.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return o
}

// requireBinary finds a Pigeonhole tool; missing, it skips the test, or
// fails it when CI is set (CI must prove the real thing).
func requireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := name + " not installed (Debian: apt-get install -y dovecot-core dovecot-sieve)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Result is what sieve-test said.
type Result struct {
	// Compiled is false when the script was refused; Lines are then nil.
	Compiled bool
	Lines    []string
	// Output is sieve-test's whole output, for failure messages.
	Output string
}

func (o *Oracle) write(name string, data []byte) (string, error) {
	p := filepath.Join(o.dir, fmt.Sprintf("%d-%s", o.n.Add(1), name))
	return p, os.WriteFile(p, data, 0o644)
}

// Test runs script on msg for the envelope from → to. Dates without a
// zone are read in UTC.
func (o *Oracle) Test(script, msg []byte, from, to string) (Result, error) {
	return o.TestSequence([][]byte{script}, msg, from, to)
}

// TestSequence runs scripts one after the other as one delivery (the
// first ones with sieve-test's -s, as sieve_before scripts run); Lines
// are then all the actions and the implicit keep of the last script run.
func (o *Oracle) TestSequence(scripts [][]byte, msg []byte, from, to string) (Result, error) {
	args := []string{"-c", o.conf, "-f", from, "-r", to}
	for i, script := range scripts {
		sp, err := o.write("script.sieve", script)
		if err != nil {
			return Result{}, err
		}
		defer os.Remove(sp)
		defer os.Remove(strings.TrimSuffix(sp, ".sieve") + ".svbin")
		if i < len(scripts)-1 {
			args = append(args, "-s")
		}
		args = append(args, sp)
	}
	mp, err := o.write("msg.eml", msg)
	if err != nil {
		return Result{}, err
	}
	defer os.Remove(mp)
	cmd := exec.Command(o.sieveTest, append(args, mp)...)
	cmd.Env = []string{"TZ=UTC", "PATH=/usr/bin:/bin"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	text := out.String()
	if strings.Contains(text, "failed to compile sieve script") {
		return Result{Output: text}, nil
	}
	if err != nil && !strings.Contains(text, "final result: failed; resolved with successful implicit keep") {
		return Result{Output: text}, fmt.Errorf("sieve-test: %w: %s", err, text)
	}
	lines, err := Parse(text)
	if err != nil {
		return Result{Output: text}, err
	}
	return Result{Compiled: true, Lines: lines, Output: text}, nil
}

// Check compiles script with sievec: nil when Pigeonhole accepts it.
func (o *Oracle) Check(script []byte) (bool, string, error) {
	sp, err := o.write("check.sieve", script)
	if err != nil {
		return false, "", err
	}
	defer os.Remove(sp)
	out := filepath.Join(o.dir, fmt.Sprintf("%d.svbin", o.n.Add(1)))
	defer os.Remove(out)
	cmd := exec.Command(o.sievec, "-c", o.conf, sp, out)
	cmd.Env = []string{"TZ=UTC", "PATH=/usr/bin:/bin"}
	b, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); ok {
			return false, string(b), nil
		}
		return false, string(b), err
	}
	return true, string(b), nil
}

// Parse normalises sieve-test's report (see the package comment).
func Parse(out string) ([]string, error) {
	var lines []string
	if strings.Contains(out, "final result: failed; resolved with successful implicit keep") {
		return []string{"error", "implicit keep"}, nil
	}
	section := ""
	var cur *action
	var acts []*action
	text := strings.Split(out, "\n")
	for i := 0; i < len(text); i++ {
		l := text[i]
		switch {
		case l == "Performed actions:":
			// A script of a sequence: only the last one's implicit
			// keep stands.
			section = "performed"
			kept := acts[:0]
			for _, a := range acts {
				if !a.implicit {
					kept = append(kept, a)
				}
			}
			acts = kept
			continue
		case l == "Implicit keep:":
			section = "implicit"
			continue
		case section == "":
			continue
		}
		switch {
		case strings.HasPrefix(l, " * "):
			cur = &action{implicit: section == "implicit", text: strings.TrimPrefix(l, " * ")}
			acts = append(acts, cur)
		case strings.HasPrefix(l, "        + ") && cur != nil:
			cur.effects = append(cur.effects, strings.TrimPrefix(l, "        + "))
		case strings.HasPrefix(l, "    => ") && cur != nil:
			k, v, _ := strings.Cut(strings.TrimPrefix(l, "    => "), ":")
			if cur.params == nil {
				cur.params = map[string]string{}
			}
			cur.params[strings.TrimSpace(k)] = strings.TrimPrefix(v, " ")
		case l == "START MESSAGE" && cur != nil:
			var body []string
			for i++; i < len(text) && text[i] != "END MESSAGE"; i++ {
				body = append(body, text[i])
			}
			cur.reason = strings.Join(body, "\n")
		}
	}
	for _, a := range acts {
		l, err := a.normal()
		if err != nil {
			return nil, err
		}
		lines = append(lines, l)
	}
	return lines, nil
}

type action struct {
	implicit bool
	text     string
	effects  []string
	params   map[string]string
	reason   string
}

func (a *action) normal() (string, error) {
	var flags []string
	var create, copy bool
	for _, e := range a.effects {
		switch {
		case strings.HasPrefix(e, "add IMAP flags:"):
			flags = append(flags, strings.Fields(strings.TrimPrefix(e, "add IMAP flags:"))...)
		case strings.HasPrefix(e, "create mailbox"):
			create = true
		case e == "preserve implicit keep":
			copy = true
		}
	}
	switch {
	case strings.HasPrefix(a.text, "store message in folder: "):
		mb := strings.TrimPrefix(a.text, "store message in folder: ")
		if a.implicit {
			return "implicit keep" + FlagsSuffix(flags), nil
		}
		return Store(mb, flags, create, copy), nil
	case a.text == "keep":
		if a.implicit {
			return "implicit keep" + FlagsSuffix(flags), nil
		}
		return Store("INBOX", flags, create, copy), nil
	case strings.HasPrefix(a.text, "redirect message to: "):
		addr := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(a.text, "redirect message to: "), "<"), ">")
		return Redirect(addr, copy), nil
	case strings.HasPrefix(a.text, "reject message with reason: "):
		return "reject " + strings.TrimPrefix(a.text, "reject message with reason: "), nil
	case a.text == "discard":
		return "discard", nil
	case a.text == "send vacation message:":
		secs, _ := strconv.ParseInt(a.params["seconds"], 10, 64)
		sub, hasSub := a.params["subject"]
		from, hasFrom := a.params["from"]
		return Vacation(secs, sub, hasSub, from, hasFrom, a.params["handle"], a.reason), nil
	}
	return "", fmt.Errorf("pigeonhole: unknown action %q", a.text)
}

// Store, Redirect, Vacation and FlagsSuffix write the normalised lines, for
// the test's side of the comparison too.
func Store(mailbox string, flags []string, create, copy bool) string {
	s := "store " + mailbox + FlagsSuffix(flags)
	if create {
		s += " create"
	}
	if copy {
		s += " copy"
	}
	return s
}

func Redirect(addr string, copy bool) string {
	if copy {
		return "redirect " + addr + " copy"
	}
	return "redirect " + addr
}

func Vacation(seconds int64, subject string, hasSubject bool, from string, hasFrom bool, handle, reason string) string {
	s := fmt.Sprintf("vacation seconds=%d", seconds)
	if hasSubject {
		s += " subject=" + subject
	}
	if hasFrom {
		s += " from=" + from
	}
	return s + fmt.Sprintf(" handle=%q reason=%q", handle, strings.ReplaceAll(reason, "\r\n", "\n"))
}

func FlagsSuffix(flags []string) string {
	if len(flags) == 0 {
		return ""
	}
	fs := make([]string, len(flags))
	for i, f := range flags {
		fs[i] = strings.ToLower(f)
	}
	sort.Strings(fs)
	return " flags=" + strings.Join(fs, ",")
}
