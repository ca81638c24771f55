package smtpbench_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/protocols/smtp"
	"github.com/vmaild/vmaild/protocols/smtp/smtpbench"
	"github.com/vmaild/vmaild/userdb"
)

// oneDomain is a directory with one local domain where every address
// exists; enough to measure the SMTP path alone.
type oneDomain struct{}

func (oneDomain) Authenticate(context.Context, string, string) (*userdb.Account, error) {
	return nil, userdb.ErrBadCredentials
}
func (oneDomain) Account(context.Context, string) (*userdb.Account, error) {
	return nil, userdb.ErrNotFound
}
func (oneDomain) IsLocalDomain(_ context.Context, d string) (bool, error) {
	return d == "example.org", nil
}
func (oneDomain) Resolve(_ context.Context, a string) ([]userdb.Destination, error) {
	return []userdb.Destination{{Address: a, Local: true}}, nil
}
func (oneDomain) QuotaLimit(context.Context, string) (userdb.Limit, error) {
	return userdb.Limit{}, nil
}
func (oneDomain) MaySendAs(_ context.Context, account, address string) (bool, error) {
	return account == address, nil
}

// noopAgent accepts everything and stores nothing.
type noopAgent struct{}

func (noopAgent) Resolve(_ context.Context, a string) (delivery.Recipient, delivery.Outcome) {
	return delivery.Recipient{Address: a}, delivery.Outcome{Kind: delivery.Accepted}
}
func (noopAgent) Deliver(_ context.Context, env delivery.Envelope, _ delivery.Message) []delivery.Outcome {
	out := make([]delivery.Outcome, len(env.Recipients))
	for i := range out {
		out[i] = delivery.Outcome{Kind: delivery.Delivered}
	}
	return out
}

func startServer(tb testing.TB) string {
	tb.Helper()
	s := &smtp.Server{
		Role:      smtp.RoleMTA,
		Hostname:  "bench.example.org",
		Directory: oneDomain{},
		Agent:     noopAgent{},
		Gate:      &gate.Gate{Limits: gate.Config{MaxPerNetwork: -1, MaxUnauthenticated: -1}},
		SpoolDir:  tb.TempDir(),
		Logger:    slog.New(slog.DiscardHandler),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	tb.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, smtp.ErrServerClosed) {
			tb.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

func TestRunAgainstLoopbackServer(t *testing.T) {
	addr := startServer(t)
	r, err := smtpbench.Run(context.Background(), smtpbench.Options{
		Addr: addr, From: "bench@remote.test", To: []string{"alice@example.org"},
		Count: 500, Concurrency: 4, Size: 2048,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.Messages != 500 || r.Errors != 0 {
		t.Fatalf("result %v (first error %v)", r, r.FirstError)
	}
	if !(r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 > 0) {
		t.Errorf("percentiles out of order: %v", r)
	}
}

func TestRunCountsRefusals(t *testing.T) {
	addr := startServer(t)
	r, err := smtpbench.Run(context.Background(), smtpbench.Options{
		Addr: addr, From: "bench@remote.test", To: []string{"friend@other.test"}, Count: 5,
	})
	if err == nil || r.Errors != 5 || r.Messages != 0 {
		t.Fatalf("relay attempt: %v, %v", r, err)
	}
}

func TestRunOptions(t *testing.T) {
	if _, err := smtpbench.Run(context.Background(), smtpbench.Options{}); err == nil {
		t.Fatal("Run without Addr succeeded")
	}
}

// BenchmarkSMTP sends b.N messages of 4 KiB over 8 connections; run with
// go test -bench SMTP ./protocols/smtp/smtpbench.
func BenchmarkSMTP(b *testing.B) {
	addr := startServer(b)
	b.ResetTimer()
	r, err := smtpbench.Run(context.Background(), smtpbench.Options{
		Addr: addr, From: "bench@remote.test", To: []string{"alice@example.org"},
		Count: b.N, Concurrency: 8, Size: 4096,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.PerSecond, "msgs/s")
	b.ReportMetric(float64(r.P50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(r.P90.Microseconds()), "p90-µs")
	b.ReportMetric(float64(r.P99.Microseconds()), "p99-µs")
	b.Logf("%v", r)
}
