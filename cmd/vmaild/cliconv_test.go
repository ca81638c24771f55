package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runWith runs a fresh root command with the given system configuration
// path, as main would, returning stdout, stderr and the error.
func runWith(t *testing.T, systemConfig string, args ...string) (string, string, error) {
	t.Helper()
	root := newRoot(&app{systemConfig: systemConfig})
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(""))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// TestCLIConfigLookup: -c, then $VMAILD_CONFIG, then the system file, then
// the built-in defaults only when no file exists anywhere; the command
// says on stderr which it used.
func TestCLIConfigLookup(t *testing.T) {
	write := func(dir, data string) string {
		p := filepath.Join(dir, "vmaild.yaml")
		if err := os.WriteFile(p, []byte("data_dir: "+data+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dir := t.TempDir()
	flagFile := write(t.TempDir(), filepath.Join(dir, "from-flag"))
	envFile := write(t.TempDir(), filepath.Join(dir, "from-env"))
	systemFile := write(t.TempDir(), filepath.Join(dir, "from-system"))
	absent := filepath.Join(dir, "absent.yaml")
	t.Setenv("VMAILD_DATA", filepath.Join(dir, "from-default"))

	for _, tc := range []struct {
		name, env, system string
		args              []string
		wantData, wantErr string
		wantStderr        string
	}{
		{name: "-c wins", env: envFile, system: systemFile, args: []string{"-c", flagFile},
			wantData: "from-flag", wantStderr: "configuration: " + flagFile + " (-c)"},
		{name: "VMAILD_CONFIG before the system file", env: envFile, system: systemFile,
			wantData: "from-env", wantStderr: "configuration: " + envFile + " ($VMAILD_CONFIG)"},
		{name: "the system file", system: systemFile,
			wantData: "from-system", wantStderr: "configuration: " + systemFile + " (system file)"},
		{name: "built-in defaults when no file exists", system: absent,
			wantData: "from-default", wantStderr: "configuration: built-in defaults (no -c, no $VMAILD_CONFIG, no " + absent + ")"},
		{name: "a missing VMAILD_CONFIG is an error, not the defaults", env: absent, system: systemFile,
			wantErr: absent},
		{name: "a missing -c is an error", system: systemFile, args: []string{"-c", absent}, wantErr: absent},
		{name: "an unreadable system file is an error", system: filepath.Join(systemFile, "not-a-dir", "x.yaml"),
			wantErr: "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("VMAILD_CONFIG", tc.env)
			} else {
				os.Unsetenv("VMAILD_CONFIG")
			}
			out, errOut, err := runWith(t, tc.system, append(tc.args, "config", "show", "--json")...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("config show: %v\n%s", err, errOut)
			}
			var shown map[string]any
			if err := json.Unmarshal([]byte(out), &shown); err != nil {
				t.Fatal(err)
			}
			if got := shown["data_dir"]; got != filepath.Join(dir, tc.wantData) {
				t.Errorf("data_dir %v, want %s", got, filepath.Join(dir, tc.wantData))
			}
			if !strings.Contains(errOut, tc.wantStderr) {
				t.Errorf("stderr %q does not say %q", errOut, tc.wantStderr)
			}
			if strings.Contains(out, "configuration: ") {
				t.Errorf("the configuration note went to stdout, where it breaks --json:\n%s", out)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "from-default")); err == nil {
		t.Errorf("config show created the default data folder")
	}
}

// TestCLIUsageErrors: unknown commands, unknown flags and bad arguments
// exit 2 with one line that says what to do, before any configuration is
// read or database opened.
func TestCLIUsageErrors(t *testing.T) {
	system := filepath.Join(t.TempDir(), "absent.yaml")
	t.Setenv("VMAILD_DATA", filepath.Join(t.TempDir(), "data"))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lst"}, `unknown command "lst" (see vmaild --help)`},
		{[]string{"user", "lst"}, `user: unknown command "lst"; did you mean list?`},
		{[]string{"config", "shwo"}, `config: unknown command "shwo"; did you mean show?`},
		{[]string{"queue", "frobnicate", "x"}, `queue: unknown command "frobnicate"`},
		{[]string{"--bogus"}, "unknown flag: --bogus (see vmaild --help)"},
		{[]string{"user", "list", "--bogus"}, "user list: unknown flag: --bogus (see vmaild user list --help)"},
		{[]string{"domain", "add"}, "domain add: accepts 1 arg(s), received 0 (see vmaild domain add --help)"},
		{[]string{"user", "list", "a.example", "b.example"}, "user list: accepts at most 1 arg(s), received 2"},
		{[]string{"config", "check", "extra"}, "config check: unknown command \"extra\""},
		{[]string{"version", "x"}, "version: unknown command \"x\""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, errOut, err := runWith(t, system, tc.args...)
			var ec exitCoder
			if !errors.As(err, &ec) || ec.ExitCode() != 2 {
				t.Fatalf("err = %v, want exit status 2", err)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line containing %q", err, tc.want)
			}
			if strings.Contains(errOut, "configuration: ") || strings.Contains(errOut, "Usage:") {
				t.Errorf("a usage error read the configuration or printed the help:\n%s", errOut)
			}
		})
	}
	if _, err := os.Stat(os.Getenv("VMAILD_DATA")); err == nil {
		t.Errorf("a usage error created the data folder")
	}
}

func TestCLIVersion(t *testing.T) {
	system := filepath.Join(t.TempDir(), "absent.yaml")
	out, _, err := runWith(t, system, "version")
	if err != nil || !strings.HasPrefix(out, "vmaild ") || !strings.Contains(out, "go1.") {
		t.Errorf("vmaild version: %q, %v", out, err)
	}
	flag, _, err := runWith(t, system, "--version")
	if err != nil || flag != out {
		t.Errorf("vmaild --version: %q, %v; want %q", flag, err, out)
	}
	js, _, err := runWith(t, system, "version", "--json")
	var v versionInfo
	if err != nil || json.Unmarshal([]byte(js), &v) != nil || v.Version == "" || !strings.HasPrefix(v.GoVersion, "go1.") {
		t.Errorf("vmaild version --json: %q, %v", js, err)
	}
}
