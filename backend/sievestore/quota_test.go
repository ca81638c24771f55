package sievestore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/backend/sieve"
)

func TestCheckQuota(t *testing.T) {
	s := Scripts{Home: t.TempDir()}
	for name, src := range map[string]string{"a": "keep;", "b": "discard;"} {
		if err := s.Put(name, []byte(src), sieve.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	q := Quota{MaxScripts: 2, MaxStorage: 25, MaxSize: 20}
	for _, tc := range []struct {
		name string
		size int64
		want QuotaLimit // 0: fits; -1: bad name
	}{
		{"a", 5, 0},             // replaces itself
		{"a", 17, 0},            // 17 + 8 = 25 fits
		{"a", 18, MaxStorage},   // 18 + 8 > 25
		{"a", 21, MaxSize},      // one script too big
		{"c", 5, MaxScripts},    // a third script
		{"a", 1 << 40, MaxSize}, // absurd sizes
		{"bad/", 1, -1},
	} {
		err := s.CheckQuota(q, tc.name, tc.size)
		var qe *QuotaError
		switch {
		case tc.want == -1:
			if !errors.Is(err, ErrName) {
				t.Errorf("CheckQuota(%q, %d) = %v, want a bad name", tc.name, tc.size, err)
			}
		case tc.want == 0:
			if err != nil {
				t.Errorf("CheckQuota(%q, %d) = %v", tc.name, tc.size, err)
			}
		case !errors.As(err, &qe) || qe.Limit != tc.want || !strings.Contains(qe.Msg, "limit") && !strings.Contains(qe.Msg, "at most"):
			t.Errorf("CheckQuota(%q, %d) = %v, want limit %d", tc.name, tc.size, err, tc.want)
		}
	}
	if err := s.CheckQuota(Quota{}, "zz", 1<<40); err != nil {
		t.Errorf("no quota: %v", err)
	}
}

// TestActiveHomeNotADirectory: a file where the mail home should be means
// no active script, not an error: the store reports the broken home when
// it writes, and the message is retried as for any store failure.
func TestActiveHomeNotADirectory(t *testing.T) {
	home := filepath.Join(t.TempDir(), "carol")
	if err := os.WriteFile(home, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if name, path, err := (Scripts{Home: home}).Active(); name != "" || path != "" || err != nil {
		t.Errorf("Active = %q, %q, %v", name, path, err)
	}
}
