package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/queue"
	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

// syncBuffer is a log sink the queue's workers may write concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSmarthostTLSPolicy: each queue.smarthost.tls policy, as the keys
// set it up, delivers to a loopback relay with a self-signed certificate
// (trusted through ca_file where the policy checks it), and verify
// against a certificate nothing trusts defers the mail with a TLS error
// in the log.
func TestSmarthostTLSPolicy(t *testing.T) {
	tests := []struct {
		name     string
		keys     Smarthost
		sinkTLS  bool
		implicit bool
		caFile   bool
		deferred bool
		wantLog  string
	}{
		{"none", Smarthost{TLS: "none"}, false, false, false, false, "tls=\"\""},
		{"starttls with a CA file", Smarthost{TLS: "starttls", Username: "relay-user", Password: "secret"}, true, false, true, false, "tls=verified"},
		{"starttls without a CA file", Smarthost{TLS: "starttls"}, true, false, false, false, "tls=unverified"},
		{"verify with a CA file", Smarthost{TLS: "verify", Username: "relay-user", Password: "secret"}, true, false, true, false, "tls=verified"},
		{"verify by default, implicit TLS", Smarthost{ImplicitTLS: true}, true, true, true, false, "tls=verified"},
		{"verify against an untrusted certificate", Smarthost{TLS: "verify"}, true, false, false, true, "TLS: TLS handshake failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srvTLS, _ := queuetest.SelfSigned(t, "relay.test")
			opts := queuetest.SinkOptions{ImplicitTLS: tc.implicit}
			if tc.sinkTLS {
				opts.TLS = srvTLS
			}
			if tc.keys.Username != "" {
				opts.Auth = &[2]string{tc.keys.Username, tc.keys.Password}
			}
			sink := queuetest.NewSink(t, opts)
			keys := tc.keys
			keys.Address = sink.Addr
			if tc.caFile {
				keys.CAFile = filepath.Join(t.TempDir(), "relay-ca.pem")
				p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvTLS.Certificates[0].Certificate[0]})
				if err := os.WriteFile(keys.CAFile, p, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if problems := keys.validate(); len(problems) > 0 {
				t.Fatalf("validate: %v", problems)
			}
			sh, err := keys.queueSmarthost()
			if err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			q, err := queue.New(queue.Config{Dir: t.TempDir(), Hostname: "mx.local.test", Smarthost: sh,
				Retry: []time.Duration{time.Hour}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				q.Shutdown(ctx)
			})
			msg := []byte("From: alice@local.test\r\nTo: bob@remote.test\r\nSubject: via the relay\r\n\r\nhello\r\n")
			id, err := q.EnqueueBytes(context.Background(), "alice@local.test", []string{"bob@remote.test"}, msg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.deferred {
				var it queue.Item
				for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					if it, err = q.Get(context.Background(), id); err == nil && it.Recipients[0].Attempts > 0 {
						break
					}
				}
				r := it.Recipients[0]
				if r.State != queue.Pending || !strings.HasPrefix(r.Status, "4.") {
					t.Errorf("recipient after the attempt: %+v, want pending with a 4.x.x status", r)
				}
				if n := len(sink.Messages()); n != 0 {
					t.Errorf("the untrusted relay got %d messages", n)
				}
			} else {
				got := sink.Wait(t, 1)
				if got[0].TLS != tc.sinkTLS {
					t.Errorf("message arrived with TLS %v, want %v", got[0].TLS, tc.sinkTLS)
				}
			}
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(logs.String(), "delivery attempt") && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if l := logs.String(); !strings.Contains(l, tc.wantLog) || strings.Contains(l, "greeting: ") {
				t.Errorf("log lacks %q (or calls a TLS failure a greeting problem):\n%s", tc.wantLog, l)
			}
		})
	}
}

// TestSmarthostKeysValidate: contradictory smarthost keys are refused with
// the key named.
func TestSmarthostKeysValidate(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(bad, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		keys Smarthost
		want string
	}{
		{Smarthost{Address: "relay:25", TLS: "sometimes"}, `queue.smarthost.tls: "sometimes" is not none, starttls or verify`},
		{Smarthost{Address: "relay:25", TLS: "none", Username: "u", Password: "p"}, "no credentials in plaintext"},
		{Smarthost{Address: "relay:465", TLS: "none", ImplicitTLS: true}, "contradicts implicit_tls"},
		{Smarthost{Address: "relay:25", CAFile: bad}, "holds no PEM certificate"},
		{Smarthost{Address: "relay:25", CAFile: bad + ".missing"}, "queue.smarthost.ca_file"},
	} {
		if got := strings.Join(tc.keys.validate(), "; "); !strings.Contains(got, tc.want) {
			t.Errorf("validate(%+v) = %q, want %q", tc.keys, got, tc.want)
		}
	}
}
