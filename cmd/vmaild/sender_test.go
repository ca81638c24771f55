package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/vmaild/vmaild/protocols/smtp"
)

// TestCheckHeaderFromConfig: smtp.check_header_from reaches every SMTP
// listener that takes AUTH, from the file and from the environment, and
// is on by default.
func TestCheckHeaderFromConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, yaml, env string
		want            bool
	}{
		{"default", "", "", true},
		{"file", "smtp:\n  check_header_from: false\n", "", false},
		{"environment", "", "false", false},
		{"environment over file", "smtp:\n  check_header_from: false\n", "true", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			if tt.env != "" {
				t.Setenv("VMAILD_SMTP_CHECK_HEADER_FROM", tt.env)
			}
			cfg, err := loadConfig(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			s := &server{cfg: cfg}
			for _, name := range []string{"smtp", "submission", "submissions"} {
				srv := s.newProtocolServer(listenerSpec{name: name}, slog.New(slog.DiscardHandler)).(*smtp.Server)
				if got := !srv.SkipHeaderSenderCheck; got != tt.want {
					t.Errorf("%s: header sender check %v, want %v", name, got, tt.want)
				}
			}
		})
	}
}
