package ldap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/vmaild/vmaild/internal/testsrv"
	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/ldif"
	"github.com/vmaild/vmaild/userdb/password"
)

// The cleartext passwords of ldif/example*.ldif.
var examplePasswords = map[string]string{
	"alice@example.com": "alice-secret",
	"bob@example.com":   "bob-secret",
	"carol@example.org": "carol-secret",
	"dave@example.org":  "dave-secret",
	"erin@example.com":  "erin-secret",
	"frank@example.org": "frank-secret",
}

func readExample(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../ldif/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// exampleSlapd is a private slapd with both example files loaded.
func exampleSlapd(t testing.TB) *testsrv.Slapd {
	t.Helper()
	s := testsrv.StartSlapd(t)
	s.Load(t, readExample(t, "example.ldif"))
	s.Load(t, readExample(t, "example-vmail.ldif"))
	return s
}

// newSource returns a Source on s bound as the admin, with vmaild's schema
// attributes; edit adjusts the configuration.
func newSource(t testing.TB, s *testsrv.Slapd, edit func(*Config)) *Source {
	t.Helper()
	cfg := Config{
		URLs:         []string{s.URL},
		BindDN:       s.AdminDN,
		BindPassword: s.AdminPassword,
		BaseDN:       "ou=people," + s.BaseDN,
		Attributes:   SchemaAttributes(),
	}
	if edit != nil {
		edit(&cfg)
	}
	src, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// modes runs f with password checks against userPassword and by AuthBind.
func modes(t *testing.T, f func(t *testing.T, authBind bool)) {
	for _, authBind := range []bool{false, true} {
		name := "hash"
		if authBind {
			name = "auth_bind"
		}
		t.Run(name, func(t *testing.T) { f(t, authBind) })
	}
}

func withAuthBind(on bool) func(*Config) { return func(c *Config) { c.AuthBind = on } }

// frankPerHour is frank's vmailSendMessagesPerHour in example-vmail.ldif.
var frankPerHour int64 = 500

func TestLookupAccount(t *testing.T) {
	s := exampleSlapd(t)
	src := newSource(t, s, nil)
	ctx := context.Background()
	tests := []struct {
		address string
		want    *userdb.Account
		err     error
	}{
		{"alice@example.com", &userdb.Account{Address: "alice@example.com", Name: "Alice Liddell", Active: true}, nil},
		{"ALICE@Example.COM", &userdb.Account{Address: "alice@example.com", Name: "Alice Liddell", Active: true}, nil},
		{"carol@example.org", &userdb.Account{Address: "carol@example.org", Name: "Carol Danvers", Active: true}, nil},
		{"erin@example.com", &userdb.Account{Address: "erin@example.com", Name: "Erin Disabled", Active: false}, nil},
		{"frank@example.org", &userdb.Account{Address: "frank@example.org", Name: "Frank Quota", Active: true,
			Quota:           &userdb.Limit{Bytes: 1 << 30, Messages: 50000},
			Maildir:         "/var/vmail/example.org/frank/Maildir",
			SenderAddresses: []string{"postmaster@example.org", "@news.example.org"},
			SendLimits:      userdb.SendLimits{MessagesPerHour: &frankPerHour}}, nil},
		{"nobody@example.com", nil, userdb.ErrNotFound},
		{"alice@example.org", nil, userdb.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.address, func(t *testing.T) {
			got, err := src.LookupAccount(ctx, tt.address)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || userdb.Temporary(err) {
					t.Fatalf("LookupAccount = %v, %v; want %v", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LookupAccount: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("LookupAccount = %+v %+v\nwant %+v %+v", *got, got.Quota, *tt.want, tt.want.Quota)
			}
		})
	}
}

func TestLookupPlainInetOrgPerson(t *testing.T) {
	// Default configuration: no vmaild schema attributes at all.
	s := exampleSlapd(t)
	src := newSource(t, s, func(c *Config) { c.Attributes = Attributes{} })
	got, err := src.LookupAccount(context.Background(), "frank@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Active || got.Quota != nil || got.Maildir != "" || got.SenderAddresses != nil {
		t.Errorf("without schema attributes: %+v, want active, no quota, no maildir, no sender addresses", got)
	}
}

func TestAuthenticate(t *testing.T) {
	s := exampleSlapd(t)
	modes(t, func(t *testing.T, authBind bool) {
		src := newSource(t, s, withAuthBind(authBind))
		ctx := context.Background()
		for addr, pw := range examplePasswords {
			acct, err := src.Authenticate(ctx, addr, pw)
			if err != nil {
				t.Errorf("Authenticate(%s, right password): %v", addr, err)
				continue
			}
			if acct.Address != addr {
				t.Errorf("Authenticate(%s) = account %q", addr, acct.Address)
			}
		}
		// Authenticate does not judge Active; userdb.Users does.
		if acct, err := src.Authenticate(ctx, "erin@example.com", "erin-secret"); err != nil || acct.Active {
			t.Errorf("disabled erin: %+v, %v; want the account, inactive", acct, err)
		}
		bad := []struct {
			name, addr, pw string
			err            error
		}{
			{"wrong password", "alice@example.com", "bob-secret", userdb.ErrBadCredentials},
			{"empty password", "alice@example.com", "", userdb.ErrBadCredentials},
			{"password prefix", "alice@example.com", "alice-secre", userdb.ErrBadCredentials},
			{"password with NUL", "alice@example.com", "alice-secret\x00", userdb.ErrBadCredentials},
			{"the stored hash itself", "alice@example.com", "{SSHA}XGJocUlUAGTvbo03WKJt3cH6rI0YC4OG", userdb.ErrBadCredentials},
			{"10 KB password", "alice@example.com", strings.Repeat("a", 10<<10), userdb.ErrBadCredentials},
			{"unknown user", "nobody@example.com", "x", userdb.ErrNotFound},
			{"unknown user, empty password", "nobody@example.com", "", userdb.ErrBadCredentials},
		}
		for _, tt := range bad {
			acct, err := src.Authenticate(ctx, tt.addr, tt.pw)
			if acct != nil || !errors.Is(err, tt.err) || userdb.Temporary(err) {
				t.Errorf("%s: Authenticate = %v, %v; want %v", tt.name, acct, err, tt.err)
			}
			if err != nil && strings.Contains(err.Error(), tt.pw) && len(tt.pw) > 3 {
				t.Errorf("%s: error %q contains the password", tt.name, err)
			}
		}
	})
}

// hostile are logins meant to break out of the filter, match other
// entries, or upset the server. Canonical would refuse most of them; the
// Source must be safe on its own.
var hostile = []string{
	"*",
	"*@example.com",
	"alice*",
	"*)(uid=*))(|(uid=*",
	"alice@example.com)(mail=*",
	"alice@example.com)(|(mail=*)",
	"*)(|(objectClass=*)",
	"' OR '1'='1",
	"admin\")(|(a=b",
	"\\2a",
	"alice@example.com\x00",
	"\x00",
	"alice\x00@example.com",
	"alice@example.com\r\nmail: x",
	strings.Repeat("a", 10<<10),
	strings.Repeat("a", 10<<10) + "@example.com",
	strings.Repeat("*", 1000),
	strings.Repeat("(", 1000),
	"alice@example.com" + strings.Repeat("\\", 100),
	"",
	"cn=admin,dc=example,dc=com",
	"uid=alice@example.com,ou=people,dc=example,dc=com",
}

func TestHostileLogins(t *testing.T) {
	s := exampleSlapd(t)
	modes(t, func(t *testing.T, authBind bool) {
		src := newSource(t, s, withAuthBind(authBind))
		ctx := context.Background()
		for _, login := range hostile {
			name := login
			if len(name) > 40 {
				name = name[:40] + "…"
			}
			acct, err := src.LookupAccount(ctx, login)
			if err == nil || !errors.Is(err, userdb.ErrNotFound) {
				t.Errorf("LookupAccount(%q) = %+v, %v; want ErrNotFound", name, acct, err)
			}
			for _, pw := range []string{"alice-secret", "admin-secret", "*", "", "x"} {
				acct, err := src.Authenticate(ctx, login, pw)
				if err == nil || acct != nil {
					t.Errorf("Authenticate(%q, %q) succeeded: %+v", name, pw, acct)
					continue
				}
				if !errors.Is(err, userdb.ErrNotFound) && !errors.Is(err, userdb.ErrBadCredentials) {
					t.Errorf("Authenticate(%q, %q) = %v; want ErrNotFound or ErrBadCredentials", name, pw, err)
				}
			}
		}
	})
}

func TestAmbiguousEntries(t *testing.T) {
	s := exampleSlapd(t)
	s.Load(t, `dn: uid=twin1,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: twin1
cn: Twin
sn: One
mail: twin@example.com
userPassword: {SSHA}XGJocUlUAGTvbo03WKJt3cH6rI0YC4OG

dn: uid=twin2,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: twin2
cn: Twin
sn: Two
mail: twin@example.com
userPassword: {SSHA}XGJocUlUAGTvbo03WKJt3cH6rI0YC4OG

dn: uid=twin3,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: twin3
cn: Twin
sn: Three
mail: twin@example.com
`)
	modes(t, func(t *testing.T, authBind bool) {
		src := newSource(t, s, withAuthBind(authBind))
		ctx := context.Background()
		if _, err := src.LookupAccount(ctx, "twin@example.com"); !errors.Is(err, ErrAmbiguous) || userdb.Temporary(err) {
			t.Errorf("LookupAccount of a duplicated address = %v, want ErrAmbiguous", err)
		}
		if acct, err := src.Authenticate(ctx, "twin@example.com", "alice-secret"); !errors.Is(err, ErrAmbiguous) {
			t.Errorf("Authenticate of a duplicated address = %+v, %v, want ErrAmbiguous", acct, err)
		}
	})
}

// TestOutage stops slapd under a working Source: lookups and logins must
// say "try later", never "no such user" or "wrong password", and the same
// Source must recover once slapd is back.
func TestOutage(t *testing.T) {
	s := exampleSlapd(t)
	modes(t, func(t *testing.T, authBind bool) {
		src := newSource(t, s, withAuthBind(authBind))
		ctx := context.Background()
		// Fill the pools, so the outage hits pooled connections.
		if _, err := src.Authenticate(ctx, "alice@example.com", "alice-secret"); err != nil {
			t.Fatal(err)
		}

		s.Stop()
		for i := 0; i < 3; i++ {
			if acct, err := src.LookupAccount(ctx, "alice@example.com"); !userdb.Temporary(err) {
				t.Errorf("LookupAccount during outage = %+v, %v; want ErrUnavailable", acct, err)
			}
			for _, pw := range []string{"alice-secret", "wrong"} {
				acct, err := src.Authenticate(ctx, "alice@example.com", pw)
				if !userdb.Temporary(err) || errors.Is(err, userdb.ErrBadCredentials) || errors.Is(err, userdb.ErrNotFound) {
					t.Errorf("Authenticate(%q) during outage = %+v, %v; want only ErrUnavailable", pw, acct, err)
				}
			}
			if _, err := src.LookupAccount(ctx, "nobody@example.com"); !userdb.Temporary(err) || errors.Is(err, userdb.ErrNotFound) {
				t.Errorf("LookupAccount(unknown) during outage = %v; want only ErrUnavailable", err)
			}
		}

		s.Start()
		if _, err := src.LookupAccount(ctx, "alice@example.com"); err != nil {
			t.Errorf("LookupAccount after restart: %v", err)
		}
		if _, err := src.Authenticate(ctx, "bob@example.com", "bob-secret"); err != nil {
			t.Errorf("Authenticate after restart: %v", err)
		}
		if _, err := src.Authenticate(ctx, "bob@example.com", "wrong"); !errors.Is(err, userdb.ErrBadCredentials) {
			t.Errorf("wrong password after restart = %v, want ErrBadCredentials", err)
		}
	})
}

// TestRestartWithFullPool restarts slapd while every pooled connection is
// idle: each has to be noticed as dead and replaced, without a single
// lookup failing once the server is back.
func TestRestartWithFullPool(t *testing.T) {
	s := exampleSlapd(t)
	src := newSource(t, s, func(c *Config) { c.PoolSize = 4 })
	ctx := context.Background()
	lookupParallel := func() []error {
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = src.LookupAccount(ctx, "bob@example.com")
			}()
		}
		wg.Wait()
		return errs
	}
	for _, err := range lookupParallel() {
		if err != nil {
			t.Fatal(err)
		}
	}
	s.Stop()
	s.Start()
	for _, err := range lookupParallel() {
		if err != nil {
			t.Errorf("lookup after restart: %v", err)
		}
	}
}

// TestUnresponsiveServer points the Source at a socket that accepts and
// never answers: the request timeout must turn that into ErrUnavailable.
func TestUnresponsiveServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Accept and hold every connection, answer nothing.
	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	modes(t, func(t *testing.T, authBind bool) {
		src, err := New(Config{URLs: []string{"ldap://" + l.Addr().String()}, BaseDN: "dc=example,dc=com",
			AuthBind: authBind, Timeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		if _, err := src.LookupAccount(context.Background(), "alice@example.com"); !userdb.Temporary(err) {
			t.Errorf("LookupAccount = %v, want ErrUnavailable", err)
		}
		if _, err := src.Authenticate(context.Background(), "alice@example.com", "x"); !userdb.Temporary(err) {
			t.Errorf("Authenticate = %v, want ErrUnavailable", err)
		}
	})
}

func TestUnavailableClasses(t *testing.T) {
	s := exampleSlapd(t)
	ctx := context.Background()
	tests := []struct {
		name string
		edit func(*Config)
		ctx  func() context.Context
	}{
		{"wrong service password", func(c *Config) { c.BindPassword = "wrong" }, nil},
		{"nothing listening", func(c *Config) { c.URLs = []string{"ldap://127.0.0.1:" + fmt.Sprint(testsrv.FreePort(t))} }, nil},
		{"canceled context", nil, func() context.Context {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			return ctx
		}},
		{"expired deadline", nil, func() context.Context {
			ctx, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
			t.Cleanup(cancel)
			return ctx
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newSource(t, s, tt.edit)
			c := ctx
			if tt.ctx != nil {
				c = tt.ctx()
			}
			if _, err := src.LookupAccount(c, "alice@example.com"); !userdb.Temporary(err) {
				t.Errorf("LookupAccount = %v, want ErrUnavailable", err)
			}
			if _, err := src.Authenticate(c, "alice@example.com", "alice-secret"); !userdb.Temporary(err) {
				t.Errorf("Authenticate = %v, want ErrUnavailable", err)
			}
		})
	}
	t.Run("closed source", func(t *testing.T) {
		src := newSource(t, s, nil)
		src.Close()
		if _, err := src.LookupAccount(ctx, "alice@example.com"); !userdb.Temporary(err) {
			t.Errorf("LookupAccount after Close = %v, want ErrUnavailable", err)
		}
	})
	t.Run("second URL takes over", func(t *testing.T) {
		dead := "ldap://127.0.0.1:" + fmt.Sprint(testsrv.FreePort(t))
		src := newSource(t, s, func(c *Config) { c.URLs = []string{dead, s.URL} })
		if _, err := src.LookupAccount(ctx, "alice@example.com"); err != nil {
			t.Errorf("LookupAccount with a dead first server: %v", err)
		}
	})
}

func TestConcurrent(t *testing.T) {
	s := exampleSlapd(t)
	modes(t, func(t *testing.T, authBind bool) {
		src := newSource(t, s, func(c *Config) { c.AuthBind = authBind; c.PoolSize = 3 })
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		users := []string{"alice@example.com", "bob@example.com", "carol@example.org", "dave@example.org"}
		for g := 0; g < 12; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					u := users[(g+i)%len(users)]
					switch i % 3 {
					case 0:
						if a, err := src.LookupAccount(ctx, u); err != nil || a.Address != u {
							errs <- fmt.Errorf("lookup %s: %v %v", u, a, err)
						}
					case 1:
						if a, err := src.Authenticate(ctx, u, examplePasswords[u]); err != nil || a.Address != u {
							errs <- fmt.Errorf("authenticate %s: %v %v", u, a, err)
						}
					case 2:
						if _, err := src.Authenticate(ctx, u, "wrong"); !errors.Is(err, userdb.ErrBadCredentials) {
							errs <- fmt.Errorf("wrong password for %s: %v", u, err)
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func TestAccountAdmin(t *testing.T) {
	s := exampleSlapd(t)
	src := newSource(t, s, nil)
	ctx := context.Background()
	hash, err := password.Hash("SSHA", "new-secret")
	if err != nil {
		t.Fatal(err)
	}

	// Add, then find and log in.
	newAcct := userdb.Account{Address: "Gina@Example.com", Name: "Gina Linetti", Active: true,
		Quota: &userdb.Limit{Bytes: 5000}}
	if err := src.AddAccount(ctx, newAcct, hash); err != nil {
		t.Fatalf("AddAccount: %v", err)
	}
	got, err := src.Authenticate(ctx, "gina@example.com", "new-secret")
	if err != nil {
		t.Fatalf("Authenticate new account: %v", err)
	}
	if got.Address != "gina@example.com" || got.Name != "Gina Linetti" || got.Quota == nil || got.Quota.Bytes != 5000 {
		t.Errorf("new account = %+v %+v", got, got.Quota)
	}
	// The DN has the documented shape, so AuthBind finds the same entry.
	bindSrc := newSource(t, s, withAuthBind(true))
	if _, err := bindSrc.Authenticate(ctx, "gina@example.com", "new-secret"); err != nil {
		t.Errorf("AuthBind on added account: %v", err)
	}
	for _, dup := range []string{"gina@example.com", "alice@example.com"} {
		if err := src.AddAccount(ctx, userdb.Account{Address: dup, Active: true}, hash); !errors.Is(err, userdb.ErrExists) {
			t.Errorf("AddAccount(%s) again = %v, want ErrExists", dup, err)
		}
	}
	if err := src.AddAccount(ctx, userdb.Account{Address: "*)(uid=*", Active: true}, hash); !errors.Is(err, userdb.ErrInvalid) {
		t.Errorf("AddAccount(hostile) = %v, want ErrInvalid", err)
	}

	// SetPassword.
	hash2, _ := password.Hash("SSHA", "newer-secret")
	if err := src.SetPassword(ctx, "gina@example.com", hash2); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	if _, err := src.Authenticate(ctx, "gina@example.com", "new-secret"); !errors.Is(err, userdb.ErrBadCredentials) {
		t.Errorf("old password after SetPassword = %v, want ErrBadCredentials", err)
	}
	if _, err := src.Authenticate(ctx, "gina@example.com", "newer-secret"); err != nil {
		t.Errorf("new password after SetPassword: %v", err)
	}
	if err := src.SetPassword(ctx, "nobody@example.com", hash2); !errors.Is(err, userdb.ErrNotFound) {
		t.Errorf("SetPassword(unknown) = %v, want ErrNotFound", err)
	}
	if err := src.SetPassword(ctx, "gina@example.com", ""); err == nil {
		t.Error("SetPassword with an empty hash succeeded")
	}

	// SetAccountQuota, on an entry that lacks the vmailAccount class.
	quotaOf := func(addr string) *userdb.Limit {
		t.Helper()
		a, err := src.LookupAccount(ctx, addr)
		if err != nil {
			t.Fatalf("LookupAccount(%s): %v", addr, err)
		}
		return a.Quota
	}
	if err := src.SetAccountQuota(ctx, "alice@example.com", &userdb.Limit{Bytes: 1 << 20, Messages: 100}); err != nil {
		t.Fatalf("SetAccountQuota: %v", err)
	}
	if q := quotaOf("alice@example.com"); q == nil || *q != (userdb.Limit{Bytes: 1 << 20, Messages: 100}) {
		t.Errorf("quota = %+v", q)
	}
	if err := src.SetAccountQuota(ctx, "alice@example.com", &userdb.Limit{Messages: 7}); err != nil {
		t.Fatal(err)
	}
	if q := quotaOf("alice@example.com"); q == nil || *q != (userdb.Limit{Messages: 7}) {
		t.Errorf("quota after bytes removed = %+v", q)
	}
	if err := src.SetAccountQuota(ctx, "alice@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if q := quotaOf("alice@example.com"); q != nil {
		t.Errorf("quota after SetAccountQuota(nil) = %+v, want none", q)
	}
	if err := src.SetAccountQuota(ctx, "bob@example.com", nil); err != nil {
		t.Errorf("removing a quota that was never set: %v", err)
	}
	if err := src.SetAccountQuota(ctx, "nobody@example.com", &userdb.Limit{Bytes: 1}); !errors.Is(err, userdb.ErrNotFound) {
		t.Errorf("SetAccountQuota(unknown) = %v, want ErrNotFound", err)
	}
	if err := src.SetAccountQuota(ctx, "alice@example.com", &userdb.Limit{Bytes: -1}); err == nil {
		t.Error("negative quota accepted")
	}

	// Without the schema attributes, quota, maildir and disabling are refused precisely.
	plain := newSource(t, s, func(c *Config) { c.Attributes = Attributes{} })
	if err := plain.SetAccountQuota(ctx, "bob@example.com", &userdb.Limit{Bytes: 1}); !errors.Is(err, ErrAttributeNotConfigured) {
		t.Errorf("SetAccountQuota without attribute = %v, want ErrAttributeNotConfigured", err)
	}
	for _, a := range []userdb.Account{
		{Address: "henry@example.com", Active: false},
		{Address: "henry@example.com", Active: true, Quota: &userdb.Limit{Bytes: 1}},
		{Address: "henry@example.com", Active: true, Maildir: "/x"},
	} {
		if err := plain.AddAccount(ctx, a, hash); !errors.Is(err, ErrAttributeNotConfigured) {
			t.Errorf("AddAccount(%+v) without attributes = %v, want ErrAttributeNotConfigured", a, err)
		}
	}
	if err := plain.AddAccount(ctx, userdb.Account{Address: "henry@example.com", Active: true}, hash); err != nil {
		t.Errorf("AddAccount as plain inetOrgPerson: %v", err)
	}

	// PutAccount: update an existing account, then create a new one.
	created, err := src.PutAccount(ctx, userdb.Account{Address: "bob@example.com", Name: "Robert Builder", Active: false,
		Maildir: "/srv/bob"}, "")
	if err != nil || created {
		t.Fatalf("PutAccount(existing) = %v, %v", created, err)
	}
	bob, err := src.Authenticate(ctx, "bob@example.com", "bob-secret") // password kept
	if err != nil {
		t.Fatalf("bob after PutAccount without hash: %v", err)
	}
	if bob.Name != "Robert Builder" || bob.Active || bob.Maildir != "/srv/bob" {
		t.Errorf("bob after PutAccount = %+v", bob)
	}
	created, err = src.PutAccount(ctx, userdb.Account{Address: "bob@example.com", Name: "Robert Builder", Active: true}, hash)
	if err != nil || created {
		t.Fatalf("PutAccount(existing) again = %v, %v", created, err)
	}
	if bob, _ := src.Authenticate(ctx, "bob@example.com", "new-secret"); bob == nil || !bob.Active || bob.Maildir != "" {
		t.Errorf("bob after second PutAccount = %+v", bob)
	}
	created, err = src.PutAccount(ctx, userdb.Account{Address: "ivy@example.org", Active: true}, hash)
	if err != nil || !created {
		t.Fatalf("PutAccount(new) = %v, %v", created, err)
	}

	// ListAccounts.
	list := func(domain string) string {
		t.Helper()
		accts, err := src.ListAccounts(ctx, domain)
		if err != nil {
			t.Fatalf("ListAccounts(%q): %v", domain, err)
		}
		var addrs []string
		for _, a := range accts {
			addrs = append(addrs, a.Address)
		}
		return strings.Join(addrs, " ")
	}
	if got, want := list("example.org"), "carol@example.org dave@example.org frank@example.org ivy@example.org"; got != want {
		t.Errorf("ListAccounts(example.org) = %s, want %s", got, want)
	}
	if got, want := list("EXAMPLE.com"), "alice@example.com bob@example.com erin@example.com gina@example.com henry@example.com"; got != want {
		t.Errorf("ListAccounts(example.com) = %s, want %s", got, want)
	}
	if got := list(""); strings.Count(got, "@") != 9 {
		t.Errorf("ListAccounts() = %s, want 9 accounts", got)
	}
	if got := list("example.net"); got != "" {
		t.Errorf("ListAccounts(example.net) = %q, want none", got)
	}
	if _, err := src.ListAccounts(ctx, "*)(mail=*"); !errors.Is(err, userdb.ErrInvalid) {
		t.Errorf("ListAccounts(hostile) = %v, want ErrInvalid", err)
	}

	// DeleteAccount.
	if err := src.DeleteAccount(ctx, "gina@example.com"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	if _, err := src.LookupAccount(ctx, "gina@example.com"); !errors.Is(err, userdb.ErrNotFound) {
		t.Errorf("lookup after delete = %v, want ErrNotFound", err)
	}
	if err := src.DeleteAccount(ctx, "gina@example.com"); !errors.Is(err, userdb.ErrNotFound) {
		t.Errorf("DeleteAccount again = %v, want ErrNotFound", err)
	}
	if err := src.DeleteAccount(ctx, "*"); !errors.Is(err, userdb.ErrNotFound) {
		t.Errorf("DeleteAccount(*) = %v, want ErrNotFound", err)
	}
	if got := list(""); strings.Count(got, "@") != 8 {
		t.Errorf("after delete ListAccounts() = %s", got)
	}
}

func TestListAccountsPaged(t *testing.T) {
	// More accounts than slapd's size limit of 500 for one search.
	s := testsrv.StartSlapd(t)
	var b strings.Builder
	b.WriteString(readExample(t, "example.ldif"))
	const n = 600
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "\ndn: uid=u%03d@bulk.example,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: u%03d@bulk.example\ncn: U\nsn: U\nmail: u%03d@bulk.example\n", i, i, i)
	}
	s.Load(t, b.String())
	admin := newSource(t, s, nil)
	accts, err := admin.ListAccounts(context.Background(), "bulk.example")
	if err != nil {
		t.Fatal(err)
	}
	if len(accts) != n {
		t.Errorf("ListAccounts = %d accounts, want %d", len(accts), n)
	}

	// A service account without raised limits hits slapd's size limit
	// (500, paged or not): that must be a precise error, not a short list.
	s.Load(t, "dn: cn=vmaild,dc=example,dc=com\nobjectClass: simpleSecurityObject\nobjectClass: organizationalRole\ncn: vmaild\nuserPassword: service-secret\n")
	src := newSource(t, s, func(c *Config) {
		c.BindDN, c.BindPassword = "cn=vmaild,dc=example,dc=com", "service-secret"
		c.AuthBind = true
	})
	accts, err = src.ListAccounts(context.Background(), "bulk.example")
	if err == nil || !strings.Contains(err.Error(), "size limit") || userdb.Temporary(err) {
		t.Errorf("ListAccounts over the size limit = %d accounts, %v; want a precise permanent error", len(accts), err)
	}
	// The service account cannot read userPassword here, but AuthBind works.
	if _, err := src.Authenticate(context.Background(), "alice@example.com", "alice-secret"); err != nil {
		t.Errorf("AuthBind with a restricted service account: %v", err)
	}
	hashSrc := newSource(t, s, func(c *Config) {
		c.BindDN, c.BindPassword = "cn=vmaild,dc=example,dc=com", "service-secret"
	})
	_, err = hashSrc.Authenticate(context.Background(), "alice@example.com", "alice-secret")
	if !errors.Is(err, userdb.ErrBadCredentials) || !strings.Contains(err.Error(), "read access") {
		t.Errorf("hash mode without read access to userPassword = %v, want a precise ErrBadCredentials", err)
	}
}

// TestImportExampleTwice loads the example files into an empty directory
// through ImportEntry, twice: the second pass must change nothing.
func TestImportExampleTwice(t *testing.T) {
	s := testsrv.StartSlapd(t)
	src := newSource(t, s, nil)
	ctx := context.Background()
	var entries []ldif.Entry
	for _, f := range []string{"example.ldif", "example-vmail.ldif"} {
		es, err := ldif.Parse(strings.NewReader(readExample(t, f)))
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, es...)
	}
	for pass, want := range []ImportResult{Created, Unchanged} {
		for _, e := range entries {
			// A dry run reports what the real pass then does.
			for _, dry := range []bool{true, false} {
				got, err := src.ImportEntry(ctx, e, dry)
				if err != nil {
					t.Fatalf("pass %d: ImportEntry(%s, dry run %v): %v", pass+1, e.DN, dry, err)
				}
				if got != want {
					t.Errorf("pass %d: ImportEntry(%s, dry run %v) = %v, want %v", pass+1, e.DN, dry, got, want)
				}
			}
		}
	}
	for addr, pw := range examplePasswords {
		if _, err := src.Authenticate(ctx, addr, pw); err != nil {
			t.Errorf("Authenticate(%s) after import: %v", addr, err)
		}
	}
	if all, err := src.ListAccounts(ctx, ""); err != nil || len(all) != len(examplePasswords) {
		t.Errorf("ListAccounts after two imports = %d, %v; want %d", len(all), err, len(examplePasswords))
	}

	// An import changes what differs.
	changed := entries[2]
	changed.Attrs = []ldif.Attr{{Name: "cn", Values: []string{"Alice Pleasance Liddell"}}}
	if got, err := src.ImportEntry(ctx, changed, false); err != nil || got != Updated {
		t.Fatalf("ImportEntry(changed) = %v, %v", got, err)
	}
	if a, _ := src.LookupAccount(ctx, "alice@example.com"); a == nil || a.Name != "Alice Pleasance Liddell" {
		t.Errorf("after import of a changed cn: %+v", a)
	}

	orphan := ldif.Entry{DN: "uid=x,ou=nowhere,dc=example,dc=com", Line: 7,
		Attrs: []ldif.Attr{{Name: "objectClass", Values: []string{"inetOrgPerson"}}, {Name: "uid", Values: []string{"x"}}, {Name: "cn", Values: []string{"x"}}, {Name: "sn", Values: []string{"x"}}}}
	if _, err := src.ImportEntry(ctx, orphan, false); err == nil || !strings.Contains(err.Error(), "parent") || !strings.Contains(err.Error(), "line 7") {
		t.Errorf("ImportEntry(orphan) = %v, want a parent-missing error naming the line", err)
	}
	bad := ldif.Entry{DN: "uid=y,ou=people,dc=example,dc=com", Line: 9,
		Attrs: []ldif.Attr{{Name: "objectClass", Values: []string{"inetOrgPerson"}}, {Name: "uid", Values: []string{"y"}}}}
	if _, err := src.ImportEntry(ctx, bad, false); err == nil || userdb.Temporary(err) {
		t.Errorf("ImportEntry(schema violation) = %v, want a permanent error", err)
	}
}

// TestReadSchema: the subschema names what slapd knows, so an import can
// strip a foreign schema's attributes instead of having the entry refused.
func TestReadSchema(t *testing.T) {
	src := newSource(t, testsrv.StartSlapd(t), nil)
	sc, err := src.ReadSchema(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		got  bool
		want bool
	}{
		{"attribute mail", sc.HasAttribute("mail"), true},
		{"attribute commonName (second NAME)", sc.HasAttribute("commonName"), true},
		{"attribute cn;lang-de", sc.HasAttribute("cn;lang-de"), true},
		{"attribute vmailQuotaBytes", sc.HasAttribute("vmailQuotaBytes"), true},
		{"attribute mailQuota (iRedMail)", sc.HasAttribute("mailQuota"), false},
		{"class inetOrgPerson", sc.HasObjectClass("inetOrgPerson"), true},
		{"class vmailAccount", sc.HasObjectClass("vmailAccount"), true},
		{"class mailUser (iRedMail)", sc.HasObjectClass("mailUser"), false},
		{"inetOrgPerson allows mail", sc.Allows([]string{"inetOrgPerson"}, "mail"), true},
		{"inetOrgPerson allows sn (from person)", sc.Allows([]string{"inetOrgPerson"}, "surname"), true},
		{"inetOrgPerson allows cn;lang-de", sc.Allows([]string{"inetOrgPerson"}, "cn;lang-de"), true},
		{"inetOrgPerson+shadowAccount disallow homeDirectory", sc.Allows([]string{"inetOrgPerson", "shadowAccount"}, "homeDirectory"), false},
		{"inetOrgPerson+vmailAccount allow vmailQuotaBytes", sc.Allows([]string{"inetOrgPerson", "vmailAccount"}, "vmailQuotaBytes"), true},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestNewConfigErrors(t *testing.T) {
	ok := Config{URLs: []string{"ldap://127.0.0.1"}, BaseDN: "dc=example,dc=com"}
	tests := []struct {
		name string
		edit func(*Config)
		msg  string
	}{
		{"no URLs", func(c *Config) { c.URLs = nil }, "no server URLs"},
		{"bad scheme", func(c *Config) { c.URLs = []string{"http://x"} }, "scheme"},
		{"no host", func(c *Config) { c.URLs = []string{"ldap://"} }, "no host"},
		{"no base", func(c *Config) { c.BaseDN = "" }, "base_dn"},
		{"bad base", func(c *Config) { c.BaseDN = "not a dn" }, "base_dn"},
		{"bind without password", func(c *Config) { c.BindDN = "cn=admin,dc=example,dc=com" }, "bind_password"},
		{"bad scope", func(c *Config) { c.Scope = "deep" }, "scope"},
		{"bad placeholder", func(c *Config) { c.UserFilter = "(mail=%x)" }, "%x"},
		{"lone percent", func(c *Config) { c.UserFilter = "(mail=%u)%" }, "lone"},
		{"bad filter", func(c *Config) { c.UserFilter = "(mail=%u" }, "not a valid filter"},
		{"bad list filter", func(c *Config) { c.ListFilter = "objectClass=x" }, "list_filter"},
		{"bad user DN", func(c *Config) { c.UserDN = "uid=%u,,," }, "user_dn"},
		{"missing CA file", func(c *Config) { c.TLS.CAFile = t.TempDir() + "/none.pem" }, "ca_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("New = %v, want an error about %q", err, tt.msg)
			}
		})
	}
	src, err := New(ok)
	if err != nil {
		t.Fatalf("New(minimal) = %v", err)
	}
	src.Close()
}

func TestTemplates(t *testing.T) {
	tests := []struct {
		tmpl, address, want string
	}{
		{"(mail=%u)", "alice@example.com", "(mail=alice@example.com)"},
		{"(&(uid=%n)(dc=%d))", "alice@example.com", "(&(uid=alice)(dc=example.com))"},
		{"(mail=%u)", "*)(uid=*))(|(uid=*", `(mail=\2a\29\28uid=\2a\29\29\28|\28uid=\2a)`},
		{"(mail=%u)", "a\x00b", `(mail=a\00b)`},
		{"(mail=%u)", `\2a`, `(mail=\5c2a)`},
		{"(uid=%n)", "no-at-sign", "(uid=no-at-sign)"},
		{"(x=100%%)", "a@b", "(x=100%)"},
		{"(uid=%n)", "a@b@c", "(uid=a@b)"},
	}
	for _, tt := range tests {
		got, err := userFilter(tt.tmpl, tt.address)
		if err != nil || got != tt.want {
			t.Errorf("userFilter(%q, %q) = %q, %v; want %q", tt.tmpl, tt.address, got, err, tt.want)
		}
	}
	dn, err := userDN("uid=%u,ou=people,dc=example,dc=com", "a,b=c+d@x")
	if err != nil || dn != `uid=a\,b=c\+d@x,ou=people,dc=example,dc=com` {
		t.Errorf("userDN = %q, %v", dn, err)
	}
}

func FuzzUserFilter(f *testing.F) {
	for _, h := range hostile {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, address string) {
		filter, err := userFilter(defaultUserFilter, address)
		if err != nil {
			t.Fatal(err)
		}
		pf, err := compileFilter(filter)
		if err != nil {
			t.Fatalf("address %q gives an invalid filter %q: %v", address, filter, err)
		}
		// Whatever the address, the filter has the template's shape: an
		// AND of objectClass and one equality on mail with the address.
		if pf != "(&(objectClass=inetOrgPerson)(mail="+goldap.EscapeFilter(address)+"))" {
			t.Fatalf("address %q changed the filter structure: %s", address, pf)
		}
	})
}

// compileFilter parses a filter the way the client library sends it and
// prints it back, so its structure can be compared.
func compileFilter(f string) (string, error) {
	p, err := goldap.CompileFilter(f)
	if err != nil {
		return "", err
	}
	return goldap.DecompileFilter(p)
}

func benchSource(b *testing.B, authBind bool) *Source {
	s := exampleSlapd(b)
	return newSource(b, s, func(c *Config) { c.AuthBind = authBind })
}

// BenchmarkAuthenticate measures logins per second against a real slapd
// with {SSHA} hashes, from parallel clients.
func BenchmarkAuthenticate(b *testing.B) {
	for _, authBind := range []bool{false, true} {
		name := "hash"
		if authBind {
			name = "auth_bind"
		}
		b.Run(name, func(b *testing.B) {
			src := benchSource(b, authBind)
			ctx := context.Background()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := src.Authenticate(ctx, "alice@example.com", "alice-secret"); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
		})
	}
}

func BenchmarkLookupAccount(b *testing.B) {
	src := benchSource(b, false)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := src.LookupAccount(ctx, "frank@example.org"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

func TestTLS(t *testing.T) {
	s := exampleSlapd(t)
	ctx := context.Background()
	tests := []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"StartTLS verified", func(c *Config) { c.StartTLS = true; c.TLS.CAFile = s.CAFile }, true},
		{"ldaps verified", func(c *Config) { c.URLs = []string{s.TLSURL}; c.TLS.CAFile = s.CAFile }, true},
		{"ldaps by name", func(c *Config) {
			c.URLs = []string{strings.Replace(s.TLSURL, "127.0.0.1", "localhost", 1)}
			c.TLS.CAFile = s.CAFile
		}, true},
		{"StartTLS, untrusted certificate", func(c *Config) { c.StartTLS = true }, false},
		{"ldaps, untrusted certificate", func(c *Config) { c.URLs = []string{s.TLSURL} }, false},
		{"ldaps, wrong server name", func(c *Config) {
			c.URLs = []string{s.TLSURL}
			c.TLS.CAFile = s.CAFile
			c.TLS.ServerName = "ldap.example.net"
		}, false},
		{"ldaps, verification off", func(c *Config) { c.URLs = []string{s.TLSURL}; c.TLS.InsecureSkipVerify = true }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			modes(t, func(t *testing.T, authBind bool) {
				src := newSource(t, s, func(c *Config) { tt.edit(c); c.AuthBind = authBind })
				acct, err := src.Authenticate(ctx, "alice@example.com", "alice-secret")
				switch {
				case tt.ok && err != nil:
					t.Errorf("Authenticate over TLS: %v", err)
				case !tt.ok && !userdb.Temporary(err):
					// A certificate problem is the admin's to fix; users
					// must get "try later", not "wrong password".
					t.Errorf("Authenticate with a failing TLS setup = %+v, %v; want ErrUnavailable", acct, err)
				}
			})
		})
	}
}

// TestDefaultUserDN: new accounts go under the search base, so the
// README's base_dn ou=people,… gives one ou=people, not two.
func TestDefaultUserDN(t *testing.T) {
	for _, tc := range []struct{ base, userDN, address, want string }{
		{"ou=people,dc=example,dc=com", "", "alice@example.com", "uid=alice@example.com,ou=people,dc=example,dc=com"},
		{"dc=example,dc=com", "", "alice@example.com", "uid=alice@example.com,dc=example,dc=com"},
		{"dc=example,dc=com", "uid=%u,ou=people,dc=example,dc=com", "alice@example.com", "uid=alice@example.com,ou=people,dc=example,dc=com"},
		{"ou=mail,dc=example,dc=com", "mail=%u,ou=%d,ou=mail,dc=example,dc=com", "bob@example.org", "mail=bob@example.org,ou=example.org,ou=mail,dc=example,dc=com"},
	} {
		src, err := New(Config{URLs: []string{"ldap://127.0.0.1"}, BaseDN: tc.base, UserDN: tc.userDN})
		if err != nil {
			t.Fatalf("New(base %s): %v", tc.base, err)
		}
		got, err := userDN(src.cfg.UserDN, tc.address)
		src.Close()
		if err != nil || got != tc.want {
			t.Errorf("base %q, user_dn %q: %s -> %q, %v; want %q", tc.base, tc.userDN, tc.address, got, err, tc.want)
		}
	}
}
