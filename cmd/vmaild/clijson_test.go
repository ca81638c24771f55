package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// roundTrip parses a command's JSON output into into (a pointer to the
// command's own type) and encodes it again: the bytes must come back
// unchanged, so no field is lost or renamed on the way and the output is
// one complete JSON value. With into nil it parses into any and compares
// the values, as a script in another language would see them.
func roundTrip(t *testing.T, what, out string, into any) {
	t.Helper()
	typed := into != nil
	if !typed {
		into = new(any)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("%s: output does not parse: %v\n%s", what, err, out)
	}
	if dec.More() {
		t.Fatalf("%s: more than one JSON value:\n%s", what, out)
	}
	var again bytes.Buffer
	if err := printJSON(&again, into); err != nil {
		t.Fatal(err)
	}
	if typed {
		if again.String() != out {
			t.Errorf("%s: JSON does not round-trip:\nprinted %s\nagain   %s", what, out, again.String())
		}
		return
	}
	var first, second any
	if json.Unmarshal([]byte(out), &first) != nil || json.Unmarshal(again.Bytes(), &second) != nil || !reflect.DeepEqual(first, second) {
		t.Errorf("%s: JSON does not round-trip:\nprinted %s\nagain   %s", what, out, again.String())
	}
}

// TestCLIJSON runs every list and show command with --json on a small
// SQLite directory and checks the output parses, round-trips and holds
// what was added.
func TestCLIJSON(t *testing.T) {
	c := newCLI(t, sqliteConfig(t.TempDir()))
	c.ok("", "domain", "add", "example.com", "--quota", "1.5G")
	c.ok("alice-pw\n", "user", "add", "alice@example.com", "--password-stdin", "--name", "Alice", "--quota", "500M")
	c.ok("bob-pw\n", "user", "add", "bob@example.com", "--password-stdin")
	c.ok("", "alias", "add", "info@example.com", "alice@example.com", "bob@example.com")
	c.ok("", "sender", "add", "team@example.com", "alice@example.com")

	for _, tc := range []struct {
		args []string
		into any    // the command's type; nil: any
		want string // a fragment of the JSON
	}{
		{[]string{"domain", "list"}, new([]domainJSON), `"name": "example.com"`},
		{[]string{"domain", "list"}, new([]domainJSON), `"bytes": 1610612736`},
		{[]string{"user", "list"}, new([]accountJSON), `"address": "alice@example.com"`},
		{[]string{"user", "list", "example.com"}, new([]accountJSON), `"bytes": 524288000`},
		{[]string{"user", "list"}, new([]accountJSON), `"quota": null`}, // bob: the domain's
		{[]string{"user", "show", "alice@example.com"}, new(accountShowJSON), `"effective_quota": {`},
		{[]string{"quota", "show", "bob@example.com"}, new(quotaJSONRow), `"bytes": 1610612736`},
		{[]string{"alias", "list"}, new([]map[string]string), `"destination": "bob@example.com"`},
		{[]string{"sender", "list"}, new([]map[string]string), `"team@example.com"`},
		{[]string{"queue", "list"}, nil, `[]`},
		{[]string{"config", "show"}, new(map[string]any), `"smtp.max_message_bytes": "50M"`},
		{[]string{"config", "keys"}, nil, `"key": "smtp.mynetworks"`},
		{[]string{"version"}, new(versionInfo), `"go": "go1.`},
	} {
		what := strings.Join(tc.args, " ") + " --json"
		out := c.ok("", append(tc.args, "--json")...)
		roundTrip(t, what, out, tc.into)
		if !strings.Contains(out, tc.want) {
			t.Errorf("%s does not hold %s:\n%s", what, tc.want, out)
		}
	}
	// The tables print sizes with units too.
	wantLines(t, "domain list", c.ok("", "domain", "list"), "1.5G")
	wantLines(t, "user list", c.ok("", "user", "list"), "500M")
	wantLines(t, "quota set", c.ok("", "quota", "set", "bob@example.com", "1.5G"), "quota of bob@example.com: 1.5G")
}

// TestCLIErrorsSayWhatToDo: the directory's refusals read as the admin's
// situation, not as the SQL constraint behind them; malformed arguments
// are usage errors (exit 2).
func TestCLIErrorsSayWhatToDo(t *testing.T) {
	c := newCLI(t, sqliteConfig(t.TempDir()))
	c.ok("", "domain", "add", "example.com")
	c.ok("alice-pw\n", "user", "add", "alice@example.com", "--password-stdin")
	c.ok("", "alias", "add", "info@example.com", "alice@example.com")
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
		usage bool // exit 2
	}{
		{"", []string{"domain", "add", "example.com"}, "domain example.com already exists", false},
		{"pw\n", []string{"user", "add", "alice@example.com", "--password-stdin"}, "user alice@example.com already exists", false},
		{"", []string{"alias", "add", "info@example.com", "alice@example.com"}, "info@example.com → alice@example.com already exists", false},
		{"", []string{"user", "del", "nobody@example.com"}, "user nobody@example.com does not exist (`vmaild user list` lists them)", false},
		{"", []string{"user", "show", "nobody@example.com"}, "user nobody@example.com does not exist", false},
		{"", []string{"domain", "del", "nowhere.example"}, "domain nowhere.example does not exist", false},
		{"", []string{"alias", "add", "bob@nowhere.example", "alice@example.com"}, "domain nowhere.example is not a local domain: add it first with `vmaild domain add nowhere.example`", false},
		{"", []string{"quota", "set", "alice@example.com", "lots"}, `quota set: size "lots": want a number of bytes`, true},
		{"", []string{"quota", "set", "alice@example.com"}, "quota set: give a SIZE (like 500M or 1.5G), or --inherit", true},
		{"pw\n", []string{"user", "add", "not-an-address", "--password-stdin"}, "user add: invalid address", true},
		{"", []string{"domain", "add", "example.org", "--quota", "1.5.5G"}, "domain add: --quota: size", true},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, _, err := c.run(tc.stdin, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			for _, leak := range []string{"constraint", "UNIQUE", "strconv", "(1555)", "sql "} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error leaks %q: %v", leak, err)
				}
			}
			var ec exitCoder
			if isUsage := errors.As(err, &ec) && ec.ExitCode() == 2; isUsage != tc.usage {
				t.Errorf("usage error (exit 2) = %v, want %v: %v", isUsage, tc.usage, err)
			}
		})
	}
}

// TestAliasTargetWarning: an alias to a local address that is neither a
// mailbox nor an alias is added, with a warning that its mail will
// bounce; existing and remote targets add silently.
func TestAliasTargetWarning(t *testing.T) {
	c := newCLI(t, sqliteConfig(t.TempDir()))
	c.ok("", "domain", "add", "example.com")
	c.ok("alice-pw\n", "user", "add", "alice@example.com", "--password-stdin")
	for _, tc := range []struct {
		dest, warning string
	}{
		{"ghost@example.com", "warning: ghost@example.com is neither a mailbox nor an alias here: mail to team@example.com bounces for it until it exists"},
		{"alice@example.com", ""},
		{"alice+lists@example.com", ""},
		{"friend@remote.test", ""},
	} {
		stdout, stderr, err := c.run("", "alias", "add", "team@example.com", tc.dest)
		if err != nil || !strings.Contains(stdout, "added") {
			t.Fatalf("alias add %s: %q, %v", tc.dest, stdout, err)
		}
		if got := strings.TrimSpace(stderr); !strings.Contains(got, tc.warning) || (tc.warning == "" && strings.Contains(got, "warning")) {
			t.Errorf("alias add %s: stderr %q, want %q", tc.dest, got, tc.warning)
		}
	}
}
