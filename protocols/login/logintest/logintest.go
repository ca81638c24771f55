// Package logintest makes login services in states that protocol tests
// need to reach, the way net/http/httptest makes servers.
package logintest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/userdb/password"
)

// Saturated returns a login service with no room to verify a password:
// its one verification slot and its one queue place are held until the
// test ends. Every attempt that needs a verification (a password a
// directory checks with password.Caps.Verify, or a refused one, which
// pays for a dummy verification) fails with login.ErrBusy.
func Saturated(t testing.TB) *login.Service {
	t.Helper()
	s, err := login.New(login.Config{
		MaxConcurrentVerifications: 1, MaxWaiting: 1, MaxWaitingPerNetwork: 1,
		DummyScheme: "SSHA",
	})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	hold := func(ctx context.Context, _, _ string) error {
		done, err := password.Admit(ctx)
		if err != nil {
			return err
		}
		<-release
		done()
		return nil
	}
	finished := make(chan struct{}, 2)
	for _, holder := range []string{"192.0.2.254", "2001:db8:ffff::1"} {
		go func() {
			s.Attempt(context.Background(), netip.MustParseAddr(holder), "holder@invalid", "x", hold)
			finished <- struct{}{}
		}()
	}
	t.Cleanup(func() {
		close(release)
		<-finished
		<-finished
	})
	deadline := time.Now().Add(10 * time.Second)
	for st := s.Stats(); st.Verifying != 1 || st.Waiting != 1; st = s.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("login service not saturated: %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
	return s
}
