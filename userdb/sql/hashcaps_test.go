package sqldir

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/password"
)

// slowAdmission admits after a wait, like a login service with a queue.
type slowAdmission time.Duration

func (a slowAdmission) Admit(ctx context.Context) (func(), error) {
	select {
	case <-time.After(time.Duration(a)):
		return func() {}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// refuseAll is a login service with no room to verify.
type refuseAll struct{}

func (refuseAll) Admit(context.Context) (func(), error) { return nil, errors.New("busy") }

// Authenticate verifies under the configured caps and the context's
// admission: a hash over the caps is a "no", no room to verify is "later".
func TestAuthenticateHashCaps(t *testing.T) {
	d := openDB(t, Config{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "vmaild.db"), Timeout: 100 * time.Millisecond})
	c := ctx(t)
	if err := d.AddDomain(c, userdb.Domain{Name: "example.com", Active: true}); err != nil {
		t.Fatal(err)
	}
	acct := userdb.Account{Address: "eve@example.com", Active: true}
	// `mkpasswd -m sha-512 -R 10000 secret`
	const stored = "{CRYPT}$6$rounds=10000$w6Vb0w0EoxTMOGS$OfElREbwOYNIFM7r6p3mdZgK0u8kF.sD2gbC2xteQohz0r/2Nhmy/FuIo6sZL.MboesSnGqODV1/zABRLN8x0."
	if err := d.AddAccount(c, acct, stored); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		caps    password.Caps
		ctx     context.Context
		want    error
		wantToo error
	}{
		{"defaults", password.Caps{}, c, nil, nil},
		{"over the cap", password.Caps{SHACryptRounds: 5000}, c, userdb.ErrBadCredentials, password.ErrTooCostly},
		{"not admitted", password.Caps{}, password.WithAdmission(c, refuseAll{}), userdb.ErrUnavailable, password.ErrNotAdmitted},
		// sql.timeout bounds the query, not the wait for a verification
		// slot, which the caller's context bounds.
		{"admitted after sql.timeout", password.Caps{}, password.WithAdmission(c, slowAdmission(300*time.Millisecond)), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.SetHashCaps(tt.caps)
			_, err := d.Authenticate(tt.ctx, "eve@example.com", "secret")
			if !errors.Is(err, tt.want) || !errors.Is(err, tt.wantToo) || (tt.want == nil && err != nil) {
				t.Fatalf("Authenticate: %v; want %v and %v", err, tt.want, tt.wantToo)
			}
		})
	}
}
