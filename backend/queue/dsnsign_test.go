package queue

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// TestSignDSN: the bounce carries Config.SignDSN's fields on top, given
// the bounce as built; a signer that fails leaves it unsigned, not lost.
func TestSignDSN(t *testing.T) {
	for _, tt := range []struct {
		name   string
		err    error
		signed bool
	}{
		{"signed", nil, true},
		{"signer fails", errors.New("no key"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := refusingRemoteConfig(t)
			var seen []byte
			cfg.SignDSN = func(dsn []byte) ([]byte, error) {
				seen = bytes.Clone(dsn)
				return []byte("X-Signed: test\r\n"), tt.err
			}
			var local localSink
			local.install(&cfg, "local.test")
			q := startQueue(t, cfg)
			if _, err := q.EnqueueBytes(context.Background(), "alice@local.test", []string{"nobody@b.test"}, testMessage("bounced", 100)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the DSN", func() bool { return len(local.messages()) == 1 })
			waitEmpty(t, q)
			got := local.messages()[0].Data
			if signed := bytes.HasPrefix(got, []byte("X-Signed: test\r\nFrom: Mail Delivery System")); signed != tt.signed {
				t.Errorf("DSN signed %v, want %v:\n%.200s", signed, tt.signed, got)
			}
			if !bytes.HasSuffix(got, seen) {
				t.Error("the DSN sent is not the one signed")
			}
			parseDSN(t, got)
		})
	}
}
