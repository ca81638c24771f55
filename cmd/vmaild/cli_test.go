package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/testsrv"
)

// cli runs vmaild's command line in this process against one
// configuration file, the way an admin would, and remembers everything it
// printed so a test can prove no password ever appeared.
type cli struct {
	t          *testing.T
	configPath string
	transcript strings.Builder
	secrets    []string
}

// newCLI writes a configuration file (YAML text) into a temporary folder
// and returns a cli using it. Every password handed to run as standard
// input is checked against the transcript when the test ends.
func newCLI(t *testing.T, yaml string) *cli {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vmaild.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, configPath: path}
	t.Cleanup(func() {
		printed := printedOutput(c.transcript.String())
		for _, s := range c.secrets {
			if strings.Contains(printed, s) {
				t.Errorf("password %q appears in the command output:\n%s", s, c.transcript.String())
			}
		}
	})
	return c
}

// printedOutput is a transcript without its "$ vmaild ..." lines: the
// command lines are the test's, the rest is what vmaild printed.
func printedOutput(transcript string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(transcript, "\n") {
		if !strings.HasPrefix(l, "$ vmaild ") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// run executes `vmaild -c CONFIG args...` with stdin, returning stdout,
// stderr and the error main would print.
func (c *cli) run(stdin string, args ...string) (stdout, stderr string, err error) {
	c.t.Helper()
	if pw := strings.TrimRight(stdin, "\n"); pw != "" {
		c.secrets = append(c.secrets, pw)
	}
	return runRoot(c.t, &c.transcript, stdin, append([]string{"-c", c.configPath}, args...)...)
}

// ok is run that fails the test on an error and returns stdout.
func (c *cli) ok(stdin string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(stdin, args...)
	if err != nil {
		c.t.Fatalf("vmaild %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// fails is run that wants an error and returns its text.
func (c *cli) fails(stdin string, args ...string) string {
	c.t.Helper()
	out, _, err := c.run(stdin, args...)
	if err == nil {
		c.t.Fatalf("vmaild %s succeeded, want an error; stdout:\n%s", strings.Join(args, " "), out)
	}
	return err.Error()
}

// runRoot executes a fresh root command as main does.
func runRoot(t *testing.T, transcript *strings.Builder, stdin string, args ...string) (string, string, error) {
	t.Helper()
	// Not the machine's /etc/vmaild/vmaild.yaml: tests name their file.
	root := newRoot(&app{systemConfig: filepath.Join(t.TempDir(), "absent.yaml")})
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	if transcript != nil {
		fmt.Fprintf(transcript, "$ vmaild %s\n%s%s", strings.Join(args, " "), out.String(), errOut.String())
		if err != nil {
			fmt.Fprintf(transcript, "error: %v\n", err)
		}
	}
	return out.String(), errOut.String(), err
}

// openDir opens the directory a configuration file describes, as the
// server would, so a test can check what a command wrote.
func openDir(t *testing.T, configPath string) *directory {
	t.Helper()
	cfg, err := loadConfig(configPath, nil)
	if err != nil {
		t.Fatalf("load %s: %v", configPath, err)
	}
	d, err := (&app{cfg: cfg}).openDirectory(context.Background())
	if err != nil {
		t.Fatalf("open directory: %v", err)
	}
	t.Cleanup(d.Close)
	return d
}

// wantLines fails unless every fragment occurs in text.
func wantLines(t *testing.T, what, text string, fragments ...string) {
	t.Helper()
	for _, f := range fragments {
		if !strings.Contains(text, f) {
			t.Errorf("%s: want %q in:\n%s", what, f, text)
		}
	}
}

// refuseLines fails when a fragment occurs in text.
func refuseLines(t *testing.T, what, text string, fragments ...string) {
	t.Helper()
	for _, f := range fragments {
		if strings.Contains(text, f) {
			t.Errorf("%s: do not want %q in:\n%s", what, f, text)
		}
	}
}

// The configurations of the three directory layouts an installation can
// have.

func sqliteConfig(dataDir string) string {
	return fmt.Sprintf("data_dir: %s\nuserdb:\n  password_scheme: SSHA256\n", dataDir)
}

func mysqlConfig(dataDir, dsn string) string {
	return fmt.Sprintf("data_dir: %s\nsql:\n  driver: mysql\n  dsn: %q\n", dataDir, dsn)
}

// ldapConfig is accounts from slapd (vmaild schema attributes) and
// domains, aliases and usage from SQL (sqlYAML: the sql section's keys).
// SSHA hashes are ones slapd verifies itself, so users can bind.
func ldapConfig(dataDir string, s *testsrv.Slapd, sqlYAML string) string {
	return fmt.Sprintf(`data_dir: %s
userdb:
  accounts: ldap
  password_scheme: SSHA
%s
ldap:
  urls: [%s]
  bind_dn: %q
  bind_password: %q
  base_dn: %[6]s
  user_dn: uid=%%u,ou=people,%[6]s
  attributes:
    quota_bytes: vmailQuotaBytes
    quota_messages: vmailQuotaMessages
    active: vmailActive
    maildir: vmailMaildir
    sender_address: vmailSenderAddress
`, dataDir, sqlYAML, s.URL, s.AdminDN, s.AdminPassword, s.BaseDN)
}

func readLDIF(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "ldif", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The cleartext passwords of ldif/example*.ldif.
var examplePasswords = map[string]string{
	"alice@example.com": "alice-secret",
	"bob@example.com":   "bob-secret",
	"carol@example.org": "carol-secret",
	"dave@example.org":  "dave-secret",
	"erin@example.com":  "erin-secret",
	"frank@example.org": "frank-secret",
}
