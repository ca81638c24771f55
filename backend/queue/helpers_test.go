package queue

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

// logBuf collects log output for assertions and shows it on failure.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger(t testing.TB) (*slog.Logger, *logBuf) {
	lb := &logBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("queue log:\n%s", lb.String())
		}
	})
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// testConfig is a configuration whose every delay is milliseconds.
func testConfig(t testing.TB, d *queuetest.DNS) (Config, *logBuf) {
	log, lb := newLogger(t)
	return Config{
		Dir:            t.TempDir(),
		Hostname:       "out.vmaild.test",
		Resolver:       d.Addr,
		DNSTimeout:     2 * time.Second,
		ConnectTimeout: 2 * time.Second,
		CommandTimeout: 10 * time.Second,
		DataTimeout:    10 * time.Second,
		Retry:          []time.Duration{5 * time.Millisecond},
		Logger:         log,
	}, lb
}

func startQueue(t testing.TB, cfg Config) *Queue {
	t.Helper()
	q, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := q.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		q.Shutdown(ctx)
	})
	return q
}

// waitFor polls cond; the limit is a safety net, not a timing assertion.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	limit := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(limit) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitEmpty(t testing.TB, q *Queue) {
	t.Helper()
	waitFor(t, "empty queue", func() bool { return q.Len() == 0 })
}

func testMessage(subject string, bodySize int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Alice <alice@local.test>\r\nTo: <bob@remote.test>\r\nSubject: %s\r\nMessage-ID: <%s@local.test>\r\n\r\n", subject, strings.ReplaceAll(subject, " ", "."))
	line := strings.Repeat("x", 70) + "\r\n"
	for b.Len() < bodySize {
		b.WriteString(line)
	}
	return b.Bytes()
}

// localSink records what Config.Local is asked to deliver.
type localSink struct {
	mu   sync.Mutex
	msgs []queuetest.Message
}

func (l *localSink) deliver(_ context.Context, from string, rcpts []Recipient, msg []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	addrs := make([]string, len(rcpts))
	for i, r := range rcpts {
		addrs[i] = r.Addr
	}
	l.msgs = append(l.msgs, queuetest.Message{From: from, Rcpts: addrs, Data: msg})
	return nil
}

func (l *localSink) messages() []queuetest.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]queuetest.Message(nil), l.msgs...)
}

func (l *localSink) install(cfg *Config, domain string) {
	cfg.LocalDomain = func(d string) bool { return d == domain }
	cfg.Local = l.deliver
}

// refusingRemoteConfig is a test configuration whose remote b.test (MX
// mx.b.test) refuses every recipient with 550: a message to it bounces.
func refusingRemoteConfig(t testing.TB) (Config, *logBuf) {
	t.Helper()
	d := queuetest.NewDNS(t)
	d.MX("b.test", 10, "mx.b.test")
	d.A("mx.b.test", "127.0.0.1")
	sink := queuetest.NewSink(t, queuetest.SinkOptions{Rcpt: func(string) error { return err550 }})
	cfg, lb := testConfig(t, d)
	cfg.Port = sink.Port
	return cfg, lb
}
