package login

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/vmaild/vmaild/internal/testusers"
	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/password"
	sqldir "github.com/vmaild/vmaild/userdb/sql"
)

// directory is a real user directory as `vmaild serve` builds it: SQLite
// behind the cache, composed by userdb.Users.
type directory struct {
	users *userdb.Users
	cache *userdb.Cache
	db    *sqldir.DB
}

// newDirectory makes accounts user0@example.org … with the password
// testusers.Password gives them, hashed in scheme.
func newDirectory(t testing.TB, scheme string, accounts int) *directory {
	t.Helper()
	db := testusers.SQLite(t)
	if err := db.AddDomain(context.Background(), userdb.Domain{Name: "example.org", Active: true}); err != nil {
		t.Fatal(err)
	}
	addrs := make(map[string]string, accounts)
	for i := range accounts {
		a := fmt.Sprintf("user%d@example.org", i)
		addrs[a] = testusers.Password(a)
	}
	testusers.AddAccounts(t, db, scheme, addrs)
	cache := userdb.NewCache(db, db, userdb.CacheConfig{})
	return &directory{db: db, cache: cache, users: &userdb.Users{Accounts: cache.Accounts(), Domains: cache.Domains(), DefaultDomain: "example.org"}}
}

// check is the protocols' check: the directory's Authenticate.
func (d *directory) check(ctx context.Context, username, secret string) error {
	_, err := d.users.Authenticate(ctx, username, secret)
	return err
}

// Every refused attempt costs exactly one verification, whatever the
// reason it is refused: an unknown user costs what a known user with a
// wrong password does, so its timing does not tell.
func TestRefusalsCostOneVerification(t *testing.T) {
	dir := newDirectory(t, password.DefaultScheme, 2)
	ctx := context.Background()
	// user1's hash is over the caps: refused without its work, but the
	// attempt still pays for one verification.
	greedy := "{ARGON2ID}$argon2id$v=19$m=4194304,t=3,p=1$9PzGTFlpFkYQDS9ckYRdVA$bgj7OFaxd6S+eXW9HREO5xbCmO8I3EzunFgZal6CNGs"
	if err := dir.db.SetPassword(ctx, "user1@example.org", greedy); err != nil {
		t.Fatal(err)
	}
	s := newService(t, Config{DummyScheme: password.DefaultScheme, PenaltyFreeFailures: 1000, Canonical: dir.users.LoginAddress})
	tests := []struct {
		name          string
		login, secret string
		wantErr       error
		verifications uint64
	}{
		{"known user, wrong password", "user0@example.org", "wrong", userdb.ErrBadCredentials, 1},
		{"known user, same wrong password (cached refusal)", "user0@example.org", "wrong", userdb.ErrBadCredentials, 1},
		{"unknown user", "nobody@example.org", "wrong", userdb.ErrBadCredentials, 1},
		{"unknown user again", "nobody@example.org", "wrong", userdb.ErrBadCredentials, 1},
		{"unknown domain", "user0@elsewhere.example", "wrong", userdb.ErrBadCredentials, 1},
		{"malformed login", "not an address@@", "wrong", userdb.ErrBadCredentials, 1},
		{"hash over the caps", "user1@example.org", "pw-user1@example.org", password.ErrTooCostly, 1},
		{"overlong password", "user0@example.org", string(make([]byte, password.MaxPasswordLen+1)), userdb.ErrBadCredentials, 1},
		{"right password", "user0", "pw-user0@example.org", nil, 1},
		{"right password again (cached)", "user0", "pw-user0@example.org", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Stats().Verifications
			err := s.Attempt(ctx, addr("192.0.2.1"), tt.login, tt.secret, dir.check)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Attempt: %v, want %v", err, tt.wantErr)
			}
			if got := s.Stats().Verifications - before; got != tt.verifications {
				t.Fatalf("%d verifications, want %d", got, tt.verifications)
			}
		})
	}
}

// The dummy is as costly as the configured scheme: the bcrypt default
// cost when new passwords are bcrypt, not the argon2 default.
func TestDummyFollowsScheme(t *testing.T) {
	for _, scheme := range []string{"ARGON2ID", "BLF-CRYPT", "SHA512-CRYPT"} {
		s := newService(t, Config{DummyScheme: scheme})
		if got := password.Scheme(s.dummy); got != scheme {
			t.Errorf("dummy for %s is a %s hash", scheme, got)
		}
	}
}

// Caps that refuse the scheme new passwords are written in would refuse
// every new account and make the dummy free: New says so.
func TestCapsBelowScheme(t *testing.T) {
	_, err := New(Config{DummyScheme: "ARGON2ID", Hashes: password.Caps{Argon2Memory: 8192}})
	if !errors.Is(err, password.ErrTooCostly) {
		t.Fatalf("New: %v, want ErrTooCostly", err)
	}
}
