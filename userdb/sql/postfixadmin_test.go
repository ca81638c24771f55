package sqldir

import (
	gosql "database/sql"
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/spf13/viper"

	"github.com/vmaild/vmaild/schema"
	"github.com/vmaild/vmaild/userdb"
)

// loadConfig reads a directory configuration the way `vmaild` does, with
// viper, so the example file is proven to decode.
func loadConfig(t *testing.T, path string) Config {
	t.Helper()
	v := viper.New()
	v.SetConfigFile(path)
	if err := v.ReadInConfig(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var c Config
	if err := v.Unmarshal(&c); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return c
}

// testPostfixAdmin runs vmaild on PostfixAdmin's own tables through the
// overrides in testdata/postfixadmin.yaml; vmaild's schema is not created.
func testPostfixAdmin(t *testing.T, e engine) {
	c := loadConfig(t, "testdata/postfixadmin.yaml")
	if c.Driver != "mysql" || c.Queries.Account == "" || c.Queries.QuotaReserve == "" || c.Timeout == 0 {
		t.Fatalf("example config decoded incompletely: %+v", c)
	}
	c.DSN = e.dsn(t)

	fixture, err := os.ReadFile("testdata/postfixadmin.sql")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := gosql.Open("mysql", c.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, stmt := range (schema.Migration{SQL: string(fixture)}).Statements() {
		if _, err := raw.ExecContext(ctx(t), stmt); err != nil {
			t.Fatalf("fixture %.60q: %v", stmt, err)
		}
	}

	d, err := Open(ctx(t), c)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cx := ctx(t)

	t.Run("lookup account", func(t *testing.T) {
		tests := []struct {
			address string
			want    *userdb.Account
			err     error
		}{
			{"alice@example.com", &userdb.Account{Address: "alice@example.com", Name: "Alice", Active: true, Quota: &userdb.Limit{}, Maildir: "/var/vmail/example.com/alice/"}, nil},
			{"bob@example.com", &userdb.Account{Address: "bob@example.com", Name: "Bob", Active: true, Quota: &userdb.Limit{Bytes: 1048576}, Maildir: "/var/vmail/example.com/bob/"}, nil},
			{"carol@example.com", &userdb.Account{Address: "carol@example.com", Name: "Carol", Quota: &userdb.Limit{}, Maildir: "/var/vmail/example.com/carol/"}, nil},
			// Active mailbox in a disabled domain.
			{"dan@closed.example", &userdb.Account{Address: "dan@closed.example", Name: "Dan", Quota: &userdb.Limit{}, Maildir: "/var/vmail/closed.example/dan/"}, nil},
			{"sales@example.com", nil, userdb.ErrNotFound},
			{"x'or'1'='1@example.com", nil, userdb.ErrNotFound},
		}
		for _, tt := range tests {
			got, err := d.LookupAccount(cx, tt.address)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: got %+v, %v; want %+v, %v", tt.address, got, err, tt.want, tt.err)
			}
		}
	})

	t.Run("authenticate", func(t *testing.T) {
		tests := []struct {
			address, password string
			err               error
		}{
			{"alice@example.com", "secret", nil},
			{"bob@example.com", "hunter2", nil},
			{"carol@example.com", "carolpw", nil}, // bare $6$ crypt, as php crypt() writes
			{"bob@example.com", "secret", userdb.ErrBadCredentials},
			{"alice@example.com", "' OR '1'='1", userdb.ErrBadCredentials},
			{"nobody@example.com", "secret", userdb.ErrNotFound},
		}
		for _, tt := range tests {
			a, err := d.Authenticate(cx, tt.address, tt.password)
			if tt.err == nil && (err != nil || a.Address != tt.address) || tt.err != nil && (!errors.Is(err, tt.err) || a != nil) {
				t.Errorf("%s/%s: got %+v, %v; want %v", tt.address, tt.password, a, err, tt.err)
			}
		}
	})

	t.Run("lookup domain", func(t *testing.T) {
		tests := []struct {
			name string
			want *userdb.Domain
			err  error
		}{
			{"example.com", &userdb.Domain{Name: "example.com", Active: true}, nil},
			{"example.net", &userdb.Domain{Name: "example.net", Active: true, AliasFor: "example.com"}, nil},
			{"closed.example", &userdb.Domain{Name: "closed.example"}, nil},
			{"backup.example", nil, userdb.ErrNotFound},
			{"all", nil, userdb.ErrNotFound},
			{"example.org", nil, userdb.ErrNotFound},
		}
		for _, tt := range tests {
			got, err := d.LookupDomain(cx, tt.name)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: got %+v, %v; want %+v, %v", tt.name, got, err, tt.want, tt.err)
			}
		}
	})

	t.Run("lookup aliases", func(t *testing.T) {
		tests := []struct {
			source string
			want   []string
		}{
			{"sales@example.com", []string{"alice@example.com", "bob@example.com", "friend@elsewhere.example"}},
			{"alice@example.com", []string{"alice@example.com"}},
			{"@example.com", []string{"alice@example.com"}},
			{"old@example.com", nil}, // inactive
			{"nobody@example.com", nil},
		}
		for _, tt := range tests {
			got, err := d.LookupAliases(cx, tt.source)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: got %q, %v; want %q", tt.source, got, err, tt.want)
			}
		}
	})

	t.Run("sender logins", func(t *testing.T) {
		tests := []struct {
			key  string
			want []string
		}{
			{"sales@example.com", []string{"alice@example.com", "bob@example.com", "friend@elsewhere.example"}},
			{"@example.com", nil},    // a catch-all grants nothing
			{"old@example.com", nil}, // inactive
			{"nobody@example.com", nil},
		}
		for _, tt := range tests {
			got, err := d.SenderLogins(cx, tt.key)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: got %q, %v; want %q", tt.key, got, err, tt.want)
			}
		}
		u := &userdb.Users{Accounts: d, Domains: d, Senders: d}
		for _, tt := range []struct {
			account, address string
			want             bool
		}{
			{"alice@example.com", "sales@example.com", true},
			{"alice@example.com", "ceo@example.com", false},  // alice owns the catch-all
			{"alice@example.com", "alice@example.net", true}, // alias domain
		} {
			if got, err := u.MaySendAs(cx, tt.account, tt.address); err != nil || got != tt.want {
				t.Errorf("MaySendAs(%s, %s) = %v, %v; want %v", tt.account, tt.address, got, err, tt.want)
			}
		}
	})

	t.Run("quota in quota2", func(t *testing.T) {
		if err := d.AddUsage(cx, "bob@example.com", 1000, 2); err != nil {
			t.Fatal(err)
		}
		if ok, err := d.ReserveUsage(cx, "bob@example.com", 1047576, 1, userdb.Limit{Bytes: 1048576}); !ok || err != nil {
			t.Fatalf("reserve to the limit: %v %v", ok, err)
		}
		if ok, err := d.ReserveUsage(cx, "bob@example.com", 1, 0, userdb.Limit{Bytes: 1048576}); ok || err != nil {
			t.Fatalf("reserve over: %v %v", ok, err)
		}
		if u, err := d.Usage(cx, "bob@example.com"); err != nil || u != (userdb.Usage{Bytes: 1048576, Messages: 3}) {
			t.Fatalf("usage: %+v, %v", u, err)
		}
		var b, m int64
		if err := raw.QueryRowContext(cx, "SELECT bytes, messages FROM quota2 WHERE username = 'bob@example.com'").Scan(&b, &m); err != nil || b != 1048576 || m != 3 {
			t.Fatalf("quota2 row: %d %d %v", b, m, err)
		}
		if err := d.SetUsage(cx, "bob@example.com", userdb.Usage{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("admin refused", func(t *testing.T) {
		if err := d.AddAccount(cx, userdb.Account{Address: "eve@example.com"}, "{PLAIN}x"); !errors.Is(err, ErrForeignSchema) {
			t.Errorf("add account: %v", err)
		}
		if _, err := d.ListDomains(cx); !errors.Is(err, ErrForeignSchema) {
			t.Errorf("list domains: %v", err)
		}
		if err := d.AddSender(cx, "ceo@example.com", "alice@example.com"); !errors.Is(err, ErrForeignSchema) {
			t.Errorf("add sender: %v", err)
		}
	})
}
