package login

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/password"
)

// BenchmarkUnknownVersusWrongPassword times a login of an unknown user and
// one of a known user with a wrong password, interleaved so that both see
// the same machine load, through a real SQLite directory with Argon2id
// hashes (the default scheme). Timing must not tell them apart: the
// reported unknown/known ratio should be within 0.8–1.2.
//
//	go test -run '^$' -bench UnknownVersusWrongPassword ./protocols/login/
func BenchmarkUnknownVersusWrongPassword(b *testing.B) {
	dir := newDirectory(b, password.DefaultScheme, 1)
	s := newService(b, Config{DummyScheme: password.DefaultScheme, PenaltyFreeFailures: 1 << 30, Canonical: dir.users.LoginAddress})
	ctx := context.Background()
	client := addr("192.0.2.1")
	var unknown, known time.Duration
	i := 0
	for b.Loop() {
		i++
		// A fresh wrong password each time, as a guesser sends: no cached
		// refusal, the known user's hash is really verified.
		secret := fmt.Sprintf("guess-%d", i)
		begin := time.Now()
		if err := s.Attempt(ctx, client, fmt.Sprintf("nobody%d@example.org", i), secret, dir.check); !errors.Is(err, userdb.ErrBadCredentials) {
			b.Fatalf("unknown user: %v", err)
		}
		mid := time.Now()
		if err := s.Attempt(ctx, client, "user0@example.org", secret, dir.check); !errors.Is(err, userdb.ErrBadCredentials) {
			b.Fatalf("known user: %v", err)
		}
		unknown += mid.Sub(begin)
		known += time.Since(mid)
	}
	b.ReportMetric(float64(unknown.Microseconds())/float64(i)/1000, "unknown-ms/login")
	b.ReportMetric(float64(known.Microseconds())/float64(i)/1000, "known-wrong-ms/login")
	b.ReportMetric(float64(unknown)/float64(known), "unknown/known")
	b.ReportMetric(float64(s.Stats().Verifications)/float64(2*i), "verifications/login")
}
