package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1024", 1024},
		{"10M", 10 << 20},
		{"10m", 10 << 20},
		{"10 MB", 10 << 20},
		{"2GiB", 2 << 30},
		{"1.5G", 3 << 29},
		{"0.5K", 512},
		{"1.1K", 1126}, // rounded down to a whole byte
		{"1T", 1 << 40},
		{"8192B", 8192},
		{" 7k ", 7 << 10},
	} {
		got, err := parseByteSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "M", "-1", "-1M", "+5", "1.5.5M", "10X", "1.", ".5M", "ten", "1e6", "9999999999T", "1.1234567G", "10 000"} {
		if got, err := parseByteSize(bad); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", bad, got)
		} else if !strings.Contains(err.Error(), "10M, 1.5G") {
			t.Errorf("parseByteSize(%q) error %q does not show the syntax", bad, err)
		}
	}
}

func TestFormatByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{0, "0"},
		{1000, "1000"},
		{1024, "1K"},
		{50 << 20, "50M"},
		{3 << 29, "1.5G"},
		{1 << 30, "1G"},
		{1000000, "1000000"}, // 976.5625K would not read back exactly
		{1<<20 + 1<<18, "1.25M"},
		{1 << 42, "4T"},
	} {
		got := formatByteSize(tc.in)
		if got != tc.want {
			t.Errorf("formatByteSize(%d) = %q, want %q", tc.in, got, tc.want)
		}
		if back, err := parseByteSize(got); err != nil || back != tc.in {
			t.Errorf("parseByteSize(formatByteSize(%d) = %q) = %d, %v", tc.in, got, back, err)
		}
	}
}

// TestConfigLoad reads configurations from the file, the environment and
// flags and checks the values they give, or the problems they report.
func TestConfigLoad(t *testing.T) {
	for _, tc := range []struct {
		name  string
		yaml  string
		env   map[string]string
		flags []string
		check func(c Config) any // what it returns is compared to want
		want  any
		// problems wanted in the error, in any order; none: no error
		problems []string
		absent   []string // not in the error
	}{
		{name: "size with unit in the file", yaml: "smtp:\n  max_message_bytes: 10M\n",
			check: func(c Config) any { return c.SMTP.MaxMessageBytes }, want: int64(10 << 20)},
		{name: "size with a fraction", yaml: "metrics:\n  min_free_bytes: 1.5G\n",
			check: func(c Config) any { return c.Metrics.MinFreeBytes }, want: int64(3 << 29)},
		{name: "plain byte count", yaml: "smtp:\n  max_message_bytes: 1048576\n",
			check: func(c Config) any { return c.SMTP.MaxMessageBytes }, want: int64(1 << 20)},
		{name: "size in the environment", env: map[string]string{"VMAILD_SMTP_MAX_MESSAGE_BYTES": "2M"},
			check: func(c Config) any { return c.SMTP.MaxMessageBytes }, want: int64(2 << 20)},
		{name: "size as a flag", flags: []string{"--smtp.max_message_bytes", "3M"}, env: map[string]string{"VMAILD_SMTP_MAX_MESSAGE_BYTES": "2M"},
			check: func(c Config) any { return c.SMTP.MaxMessageBytes }, want: int64(3 << 20)},
		{name: "bad size", yaml: "smtp:\n  max_message_bytes: ten\n",
			problems: []string{`smtp.max_message_bytes: "ten": expected a size like 10M, 1.5G or a number of bytes (from file)`}},
		{name: "empty list in the environment", yaml: "smtp:\n  mynetworks: [10.0.0.0/8]\n", env: map[string]string{"VMAILD_SMTP_MYNETWORKS": ""},
			check: func(c Config) any { return c.SMTP.MyNetworks }, want: []string{}},
		{name: "list in the environment", env: map[string]string{"VMAILD_SMTP_MYNETWORKS": "10.0.0.0/8, 192.0.2.0/24"},
			check: func(c Config) any { return c.SMTP.MyNetworks }, want: []string{"10.0.0.0/8", "192.0.2.0/24"}},
		{name: "empty string in the environment", yaml: "metrics:\n  address: 127.0.0.1:9999\n", env: map[string]string{"VMAILD_METRICS_ADDRESS": ""},
			check: func(c Config) any { return c.Metrics.Address }, want: ""},
		{name: "empty number in the environment", env: map[string]string{"VMAILD_QUEUE_PORT": ""},
			problems: []string{`queue.port: "": expected a whole number (from VMAILD_QUEUE_PORT (set, empty))`}},
		{name: "a listener given an address", yaml: "listen:\n  smtp: \"127.0.0.1:25\"\n",
			problems: []string{`listen.smtp: expected a mapping with address, insecure_auth`, `(like smtp: {address: …}), not "127.0.0.1:25"`},
			absent:   []string{"unknown key", "listen.smtp.insecure_auth", "listen.smtp.address"}},
		{name: "a section given a number", yaml: "smtp: 5\n",
			problems: []string{"smtp: expected a mapping with check_header_from, max_message_bytes"}},
		{name: "a list given a mapping", yaml: "smtp:\n  mynetworks: {lan: 10.0.0.0/8}\n",
			problems: []string{"smtp.mynetworks: expected a list like [a, b]"}},
		{name: "a number given a list", yaml: "queue:\n  workers: [1, 2]\n",
			problems: []string{"queue.workers: a list: expected a whole number"}},
		{name: "a duration without unit", yaml: "shutdown_timeout: 30\n",
			problems: []string{"shutdown_timeout: 30 has no unit: expected a duration like 30s"}},
		{name: "a bad boolean", yaml: "srs:\n  enabled: maybe\n",
			problems: []string{`srs.enabled: "maybe": expected true or false`}},
		{name: "port out of range", yaml: "queue:\n  port: 99999\nlisten:\n  imap:\n    address: \":99999\"\n",
			problems: []string{"queue.port: 99999 is out of range: a TCP port, 1 to 65535",
				`listen.imap.address: ":99999": port 99999 is out of range: 1 to 65535`}},
		{name: "address without port", yaml: "queue:\n  smarthost:\n    address: relay.example.com\n",
			problems: []string{`queue.smarthost.address: "relay.example.com" is not host:port`}},
		{name: "negative counts and durations", yaml: "queue:\n  workers: 0\n  max_age: -1h\nsmtp:\n  max_recipients: -5\n",
			problems: []string{"queue.workers: 0 is out of range", "queue.max_age: -1h0m0s is negative", "smtp.max_recipients: -5 is out of range"}},
		{name: "unknown keys with the rest", yaml: "smtp:\n  mynetwork: [10.0.0.0/8]\n  max_message_bytes: huge\n",
			problems: []string{"unknown key(s): smtp.mynetwork (did you mean mynetworks?)", "smtp.max_message_bytes: \"huge\""}},
		{name: "misspelt keys get a suggestion", yaml: "hostnme: mx.example.com\nlisten:\n  imap:\n    adress: \":143\"\n  frobnicate: 1\n",
			problems: []string{"hostnme (did you mean hostname?)", "listen.imap.adress (did you mean address?)", "listen.frobnicate,"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.yaml != "" {
				path = filepath.Join(t.TempDir(), "vmaild.yaml")
				if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("VMAILD_DATA", t.TempDir())
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			flags := pflag.NewFlagSet("vmaild", pflag.ContinueOnError)
			addConfigFlags(flags)
			if err := flags.Parse(tc.flags); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadConfig(path, flags)
			if len(tc.problems) == 0 {
				if err != nil {
					t.Fatalf("loadConfig: %v", err)
				}
				if got := tc.check(cfg); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got %#v, want %#v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("loadConfig succeeded, want %q", tc.problems)
			}
			for _, p := range tc.problems {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error does not say %q:\n%v", p, err)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(err.Error(), a) {
					t.Errorf("error says %q:\n%v", a, err)
				}
			}
			if strings.Contains(err.Error(), "strconv.") || strings.Contains(err.Error(), "decoding") {
				t.Errorf("error leaks a parser's internals:\n%v", err)
			}
		})
	}
}

// TestConfigSizeKeysHaveUnits holds every integer key whose name says it
// is a size to the one size syntax.
func TestConfigSizeKeysHaveUnits(t *testing.T) {
	for _, k := range configKeys(defaultConfig()) {
		isInt := k.Type.Kind() == reflect.Int || k.Type.Kind() == reflect.Int64
		if isInt && strings.HasSuffix(k.Name, "_bytes") && k.Unit != "bytes" {
			t.Errorf("%s is a size but has no unit:\"bytes\" tag, so 10M would be refused there", k.Name)
		}
		if k.Unit == "bytes" && k.Type.Kind() != reflect.Int64 {
			t.Errorf("%s: a size must be an int64, is %s", k.Name, k.Type)
		}
	}
}
