package ldap

import (
	"context"
	"errors"
	"testing"

	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/password"
)

// refuseAll is a login service with no room to verify.
type refuseAll struct{}

func (refuseAll) Admit(context.Context) (func(), error) { return nil, errors.New("busy") }

// Authenticate verifies userPassword under the configured caps and the
// context's admission: a hash over the caps is a "no", no room to verify
// is "later".
func TestAuthenticateHashCaps(t *testing.T) {
	src := newSource(t, exampleSlapd(t), nil)
	ctx := context.Background()
	// `mkpasswd -m sha-512 -R 10000 secret`
	const stored = "{CRYPT}$6$rounds=10000$w6Vb0w0EoxTMOGS$OfElREbwOYNIFM7r6p3mdZgK0u8kF.sD2gbC2xteQohz0r/2Nhmy/FuIo6sZL.MboesSnGqODV1/zABRLN8x0."
	if err := src.AddAccount(ctx, userdb.Account{Address: "eve@example.com", Active: true}, stored); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		caps      password.Caps
		ctx       context.Context
		want, too error
	}{
		{"defaults", password.Caps{}, ctx, nil, nil},
		{"over the cap", password.Caps{SHACryptRounds: 5000}, ctx, userdb.ErrBadCredentials, password.ErrTooCostly},
		{"not admitted", password.Caps{}, password.WithAdmission(ctx, refuseAll{}), userdb.ErrUnavailable, password.ErrNotAdmitted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src.SetHashCaps(tt.caps)
			_, err := src.Authenticate(tt.ctx, "eve@example.com", "secret")
			if !errors.Is(err, tt.want) || !errors.Is(err, tt.too) || (tt.want == nil && err != nil) {
				t.Fatalf("Authenticate: %v; want %v and %v", err, tt.want, tt.too)
			}
		})
	}
}
