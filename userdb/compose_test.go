package userdb_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/testsrv"
	"github.com/vmaild/vmaild/protocols/sendlimit"
	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/ldap"
	"github.com/vmaild/vmaild/userdb/password"
	sqldir "github.com/vmaild/vmaild/userdb/sql"
)

// The directory as the protocols see it, tested end to end over every
// backend combination an installation can configure: LDAP accounts with
// MariaDB domains (the production default), MariaDB alone, SQLite alone.

type setup struct {
	users *userdb.Users
	sql   *sqldir.DB
	// outage stops the server behind accounts / domains; restore restarts it.
	stopAccounts, startAccounts func()
	stopDomains, startDomains   func()
}

func openSQL(t testing.TB, cfg sqldir.Config) *sqldir.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqldir.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("sql open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

// seedDomains writes the domains and aliases every setup shares.
func seedDomains(t testing.TB, db *sqldir.DB) {
	t.Helper()
	ctx := context.Background()
	for _, d := range []userdb.Domain{
		{Name: "example.com", Active: true, Quota: userdb.Limit{Bytes: 10 << 20}},
		{Name: "example.org", Active: true},
		{Name: "alias.example", Active: true, AliasFor: "example.com"},
		{Name: "catch.example", Active: true, CatchAll: "bob@example.com"},
		{Name: "disabled.example", Active: false},
	} {
		if err := db.AddDomain(ctx, d); err != nil {
			t.Fatalf("add domain %s: %v", d.Name, err)
		}
	}
	for _, a := range [][2]string{
		{"sales@example.com", "alice@example.com"},
		{"sales@example.com", "carol@example.org"},
		{"all@example.com", "sales@example.com"},
		{"all@example.com", "partner@remote.test"},
		{"loop-a@example.com", "loop-b@example.com"},
		{"loop-b@example.com", "loop-a@example.com"},
		{"@example.org", "dave@example.org"},
	} {
		if err := db.AddAlias(ctx, a[0], a[1]); err != nil {
			t.Fatalf("add alias %v: %v", a, err)
		}
	}
	// Sending limits of a domain (its accounts together), in SQL whatever
	// serves the accounts.
	if err := db.SetSendLimits(ctx, "example.org", userdb.SendLimits{MessagesPerHour: ptr(1000), RecipientsPerMessage: ptr(50)}); err != nil {
		t.Fatalf("domain send limits: %v", err)
	}
	// The sender map: bob may send as an alias he does not receive, carol
	// as any address of her domain.
	for _, g := range [][2]string{
		{"sales@example.com", "bob@example.com"},
		{"@example.org", "carol@example.org"},
	} {
		if err := db.AddSender(ctx, g[0], g[1]); err != nil {
			t.Fatalf("add sender %v: %v", g, err)
		}
	}
}

var passwords = map[string]string{
	"alice@example.com": "alice-secret",
	"bob@example.com":   "bob-secret",
	"carol@example.org": "carol-secret",
	"dave@example.org":  "dave-secret",
	"erin@example.com":  "erin-secret",
	"frank@example.org": "frank-secret",
}

// seedSQLAccounts mirrors ldif/example*.ldif into SQL.
func seedSQLAccounts(t testing.TB, db *sqldir.DB) {
	t.Helper()
	for addr, pw := range passwords {
		h, err := password.Hash("SSHA", pw)
		if err != nil {
			t.Fatal(err)
		}
		acct := userdb.Account{Address: addr, Active: addr != "erin@example.com"}
		if addr == "frank@example.org" {
			acct.Quota = &userdb.Limit{Bytes: 1 << 30, Messages: 50000}
		}
		if err := db.AddAccount(context.Background(), acct, h); err != nil {
			t.Fatalf("add account %s: %v", addr, err)
		}
	}
	// frank's vmailSendMessagesPerHour.
	if err := db.SetSendLimits(context.Background(), "frank@example.org", userdb.SendLimits{MessagesPerHour: ptr(500)}); err != nil {
		t.Fatalf("send limits: %v", err)
	}
	// What frank's vmailSenderAddress values grant in LDAP.
	for _, a := range []string{"postmaster@example.org", "@news.example.org"} {
		if err := db.AddSender(context.Background(), a, "frank@example.org"); err != nil {
			t.Fatalf("add sender %s: %v", a, err)
		}
	}
}

func sqliteSetup(t testing.TB) *setup {
	db := openSQL(t, sqldir.Config{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "vmaild.db")})
	seedDomains(t, db)
	seedSQLAccounts(t, db)
	return &setup{users: &userdb.Users{Accounts: db, Domains: db, Quotas: db, Senders: db, Limits: db, RecipientDelimiter: "+", DefaultDomain: "example.com"}, sql: db}
}

func mariaSetup(t testing.TB, m *testsrv.MariaDB, name string) *setup {
	db := openSQL(t, sqldir.Config{Driver: "mysql", DSN: m.CreateDatabase(name), Timeout: 2 * time.Second})
	seedDomains(t, db)
	return &setup{users: &userdb.Users{Accounts: db, Domains: db, Quotas: db, Senders: db, Limits: db, RecipientDelimiter: "+", DefaultDomain: "example.com"}, sql: db,
		stopAccounts: m.Stop, startAccounts: m.Start, stopDomains: m.Stop, startDomains: m.Start}
}

func ldapSource(t testing.TB, s *testsrv.Slapd) *ldap.Source {
	t.Helper()
	for _, f := range []string{"example.ldif", "example-vmail.ldif"} {
		b, err := os.ReadFile(filepath.Join("..", "ldif", f))
		if err != nil {
			t.Fatal(err)
		}
		s.Load(t, string(b))
	}
	src, err := ldap.New(ldap.Config{
		URLs: []string{s.URL}, BindDN: s.AdminDN, BindPassword: s.AdminPassword, BaseDN: s.BaseDN,
		Attributes: ldap.SchemaAttributes(), Timeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// setups starts the real servers once for the whole table.
func setups(t *testing.T) map[string]func(t *testing.T) *setup {
	return map[string]func(t *testing.T) *setup{
		"sqlite": func(t *testing.T) *setup { return sqliteSetup(t) },
		"mariadb": func(t *testing.T) *setup {
			m := testsrv.StartMariaDB(t)
			s := mariaSetup(t, m, "vmaild")
			seedSQLAccounts(t, s.sql)
			return s
		},
		"ldap+mariadb": func(t *testing.T) *setup {
			var m *testsrv.MariaDB
			var sl *testsrv.Slapd
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); m = testsrv.StartMariaDB(t) }()
			go func() { defer wg.Done(); sl = testsrv.StartSlapd(t) }()
			wg.Wait()
			if m == nil || sl == nil {
				t.FailNow()
			}
			s := mariaSetup(t, m, "vmaild")
			s.users.Accounts = ldapSource(t, sl)
			s.stopAccounts, s.startAccounts = sl.Stop, sl.Start
			return s
		},
	}
}

func TestDirectoryBackends(t *testing.T) {
	for name, mk := range setups(t) {
		t.Run(name, func(t *testing.T) {
			s := mk(t)
			t.Run("operations", func(t *testing.T) { checkOperations(t, s.users) })
			t.Run("hostile logins", func(t *testing.T) { checkHostile(t, s.users) })
			t.Run("cached", func(t *testing.T) {
				c := userdb.NewCache(s.users.Accounts, s.users.Domains, userdb.CacheConfig{})
				u := *s.users
				u.Accounts, u.Domains, u.Senders = c.Accounts(), c.Domains(), c.Senders(s.users.Senders)
				checkOperations(t, &u)
				checkHostile(t, &u)
				checkSenderRights(t, &u)
			})
			t.Run("sender rights", func(t *testing.T) { checkSenderRights(t, s.users) })
			t.Run("quota", func(t *testing.T) { checkQuota(t, s.users) })
			t.Run("send limits", func(t *testing.T) { checkSendLimits(t, s.users) })
			if s.stopAccounts != nil {
				t.Run("outage", func(t *testing.T) { checkOutage(t, s) })
			}
		})
	}
}

func checkOperations(t *testing.T, u *userdb.Users) {
	ctx := context.Background()
	for addr, pw := range passwords {
		acct, err := u.Authenticate(ctx, strings.ToUpper(addr), pw)
		if addr == "erin@example.com" {
			if !errors.Is(err, userdb.ErrDisabled) {
				t.Errorf("disabled %s: %v", addr, err)
			}
			continue
		}
		if err != nil || acct.Address != addr {
			t.Errorf("Authenticate(%s) = %v, %v", addr, acct, err)
		}
		if _, err := u.Authenticate(ctx, addr, pw+"x"); !errors.Is(err, userdb.ErrBadCredentials) {
			t.Errorf("wrong password for %s: %v", addr, err)
		}
	}
	if _, err := u.Authenticate(ctx, "alice", "alice-secret"); err != nil {
		t.Errorf("bare local part with default domain: %v", err)
	}
	if _, err := u.Authenticate(ctx, "nobody@example.com", "x"); !errors.Is(err, userdb.ErrBadCredentials) {
		t.Errorf("unknown user: %v", err)
	}
	if a, err := u.Account(ctx, "Bob@Example.COM"); err != nil || a.Address != "bob@example.com" || !a.Active {
		t.Errorf("Account(bob) = %+v, %v", a, err)
	}
	if _, err := u.Account(ctx, "nobody@example.com"); !errors.Is(err, userdb.ErrNotFound) {
		t.Errorf("Account(nobody) = %v", err)
	}
	for d, want := range map[string]bool{"example.com": true, "EXAMPLE.ORG": true, "alias.example": true, "disabled.example": false, "remote.test": false} {
		if got, err := u.IsLocalDomain(ctx, d); err != nil || got != want {
			t.Errorf("IsLocalDomain(%s) = %v, %v", d, got, err)
		}
	}
	l := func(a string) userdb.Destination { return userdb.Destination{Address: a, Local: true} }
	for _, tt := range []struct {
		in   string
		want []userdb.Destination
		err  error
	}{
		{"alice@example.com", []userdb.Destination{l("alice@example.com")}, nil},
		{"alice@alias.example", []userdb.Destination{l("alice@example.com")}, nil},
		{"alice+lists@example.com", []userdb.Destination{{Address: "alice@example.com", Local: true, Detail: "lists"}}, nil},
		{"sales@example.com", []userdb.Destination{l("alice@example.com"), l("carol@example.org")}, nil},
		{"all@example.com", []userdb.Destination{l("alice@example.com"), l("carol@example.org"), {Address: "partner@remote.test"}}, nil},
		{"whoever@catch.example", []userdb.Destination{l("bob@example.com")}, nil},
		{"whoever@example.org", []userdb.Destination{l("dave@example.org")}, nil},
		{"carol@example.org", []userdb.Destination{l("carol@example.org")}, nil},
		{"nobody@example.com", nil, userdb.ErrNotFound},
		{"erin@example.com", nil, userdb.ErrDisabled},
		{"x@disabled.example", nil, userdb.ErrDisabled},
		{"loop-a@example.com", nil, userdb.ErrAliasLoop},
		{"someone@remote.test", []userdb.Destination{{Address: "someone@remote.test"}}, nil},
	} {
		got, err := u.Resolve(ctx, tt.in)
		if !errors.Is(err, tt.err) {
			t.Errorf("Resolve(%s) error = %v, want %v", tt.in, err, tt.err)
			continue
		}
		slices.SortFunc(got, func(a, b userdb.Destination) int { return strings.Compare(a.Address, b.Address) })
		if !slices.Equal(got, tt.want) {
			t.Errorf("Resolve(%s) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if lim, err := u.QuotaLimit(ctx, "frank@example.org"); err != nil || lim != (userdb.Limit{Bytes: 1 << 30, Messages: 50000}) {
		t.Errorf("own quota = %v, %v", lim, err)
	}
	if lim, err := u.QuotaLimit(ctx, "alice@example.com"); err != nil || lim != (userdb.Limit{Bytes: 10 << 20}) {
		t.Errorf("domain default quota = %v, %v", lim, err)
	}
}

// checkHostile: injection strings never authenticate and never match.
func checkHostile(t *testing.T, u *userdb.Users) {
	ctx := context.Background()
	for _, login := range []string{
		"*", "*)(uid=*))(|(uid=*", "*@example.com", "alice@example.com)(mail=*", "alice*",
		"' OR '1'='1", "alice@example.com' -- ", "alice@example.com'; DROP TABLE accounts; --",
		"%@example.com", "_lice@example.com", "alice\x00@example.com", "alice@example.com\x00",
		strings.Repeat("a", 10240), strings.Repeat("a", 10240) + "@example.com",
	} {
		for _, pw := range []string{"alice-secret", "*", "' OR '1'='1", "", "\x00", strings.Repeat("p", 10240)} {
			if acct, err := u.Authenticate(ctx, login, pw); err == nil || !errors.Is(err, userdb.ErrBadCredentials) {
				t.Errorf("Authenticate(%.40q, %.20q) = %v, %v; want bad credentials", login, pw, acct, err)
			}
		}
		if _, err := u.Account(ctx, login); err == nil {
			t.Errorf("Account(%.40q) matched", login)
		}
	}
	if _, err := u.Authenticate(ctx, "alice@example.com", "alice-secret\x00"); !errors.Is(err, userdb.ErrBadCredentials) {
		t.Errorf("password with NUL: %v", err)
	}
}

func checkQuota(t *testing.T, u *userdb.Users) {
	ctx := context.Background()
	const addr = "bob@example.com"
	if err := u.Quotas.SetUsage(ctx, addr, userdb.Usage{}); err != nil {
		t.Fatal(err)
	}
	limit := userdb.Limit{Bytes: 1000, Messages: 5}
	var wg sync.WaitGroup
	var mu sync.Mutex
	okCount := 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := u.Quotas.ReserveUsage(ctx, addr, 100, 1, limit)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				okCount++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	got, err := u.Quotas.Usage(ctx, addr)
	if err != nil || okCount != 5 || got != (userdb.Usage{Bytes: 500, Messages: 5}) {
		t.Errorf("20 concurrent reservations under a 5-message limit: %d succeeded, usage %+v, %v", okCount, got, err)
	}
	if err := u.Quotas.AddUsage(ctx, addr, -500, -5); err != nil {
		t.Fatal(err)
	}
}

// checkOutage: a stopped server means "try later", never "no", and the
// same directory recovers once it is back.
func checkOutage(t *testing.T, s *setup) {
	ctx := context.Background()
	u := s.users
	s.stopAccounts()
	if _, err := u.Authenticate(ctx, "alice@example.com", "alice-secret"); !userdb.Temporary(err) || errors.Is(err, userdb.ErrBadCredentials) {
		t.Errorf("accounts down: Authenticate = %v, want temporary", err)
	}
	if _, err := u.Authenticate(ctx, "alice@example.com", "wrong"); !userdb.Temporary(err) {
		t.Errorf("accounts down, wrong password: %v, want temporary", err)
	}
	if _, err := u.Account(ctx, "alice@example.com"); !userdb.Temporary(err) {
		t.Errorf("accounts down: Account = %v, want temporary", err)
	}
	if _, err := u.Resolve(ctx, "alice@example.com"); !userdb.Temporary(err) {
		t.Errorf("accounts down: Resolve = %v, want temporary", err)
	}
	checkSenderOutage(t, u, "accounts")
	s.startAccounts()
	if _, err := u.Authenticate(ctx, "alice@example.com", "alice-secret"); err != nil {
		t.Errorf("after restart: %v", err)
	}
	s.stopDomains()
	if _, err := u.Resolve(ctx, "sales@example.com"); !userdb.Temporary(err) {
		t.Errorf("domains down: Resolve = %v, want temporary", err)
	}
	if _, err := u.IsLocalDomain(ctx, "example.com"); !userdb.Temporary(err) {
		t.Errorf("domains down: IsLocalDomain = %v, want temporary", err)
	}
	if _, err := u.Quotas.ReserveUsage(ctx, "alice@example.com", 1, 1, userdb.Limit{}); !userdb.Temporary(err) {
		t.Errorf("domains down: ReserveUsage = %v, want temporary", err)
	}
	checkSenderOutage(t, u, "domains")
	s.startDomains()
	if _, err := u.Resolve(ctx, "sales@example.com"); err != nil {
		t.Errorf("after restart: %v", err)
	}
}

// BenchmarkLoginLDAP measures logins/s through the directory against a real
// slapd ({SSHA} hashes), with and without the cache in front.
func BenchmarkLoginLDAP(b *testing.B) {
	sl := testsrv.StartSlapd(b)
	src := ldapSource(b, sl)
	db := openSQL(b, sqldir.Config{Driver: "sqlite", DSN: filepath.Join(b.TempDir(), "vmaild.db")})
	seedDomains(b, db)
	for _, cached := range []bool{false, true} {
		name := "uncached"
		u := &userdb.Users{Accounts: src, Domains: db}
		if cached {
			name = "cached"
			c := userdb.NewCache(src, db, userdb.CacheConfig{})
			u.Accounts, u.Domains = c.Accounts(), c.Domains()
		}
		b.Run(name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := u.Authenticate(context.Background(), "alice@example.com", "alice-secret"); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
		})
	}
}

func ptr(v int64) *int64 { return &v }

// checkSendLimits: an account's sending limits come from its entry (LDAP
// attribute) or its SQL row, its domain's from SQL.
func checkSendLimits(t *testing.T, u *userdb.Users) {
	ctx := context.Background()
	show := func(l userdb.SendLimits) string {
		var out []string
		for _, p := range []*int64{l.MessagesPerHour, l.RecipientsPerMessage, l.RecipientsPerHour} {
			if p == nil {
				out = append(out, "-")
			} else {
				out = append(out, strconv.FormatInt(*p, 10))
			}
		}
		return strings.Join(out, " ")
	}
	for _, tt := range []struct{ address, account, domain string }{
		{"frank@example.org", "500 - -", "1000 50 -"},
		{"carol@example.org", "- - -", "1000 50 -"},
		{"alice@example.com", "- - -", "- - -"},
	} {
		a, d, err := u.SendLimits(ctx, tt.address)
		if err != nil {
			t.Errorf("SendLimits(%s): %v", tt.address, err)
			continue
		}
		if show(a) != tt.account || show(d) != tt.domain {
			t.Errorf("SendLimits(%s) = %q, %q; want %q, %q", tt.address, show(a), show(d), tt.account, tt.domain)
		}
	}

	// The limiter honours them: frank's own 500 over the default of 3,
	// the domain's 50 recipients per message for carol.
	l := sendlimit.New(sendlimit.Config{Account: sendlimit.Limits{MessagesPerHour: 3}, Lookup: u.SendLimits})
	for i := range 5 {
		tx, err := l.Begin(ctx, "frank@example.org")
		if err != nil {
			t.Fatalf("frank's message %d: %v", i+1, err)
		}
		tx.Commit()
	}
	for i := range 3 {
		tx, err := l.Begin(ctx, "alice@example.com")
		if err != nil {
			t.Fatalf("alice's message %d: %v", i+1, err)
		}
		tx.Commit()
	}
	var r *sendlimit.Refusal
	if _, err := l.Begin(ctx, "alice@example.com"); !errors.As(err, &r) || r.Limit != sendlimit.MessagesPerHour {
		t.Errorf("alice's 4th message: %v, want the default limit of 3", err)
	}
	tx, err := l.Begin(ctx, "carol@example.org")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := tx.Recipient(); err != nil {
			t.Fatalf("carol's recipient %d: %v", i+1, err)
		}
	}
	if err := tx.Recipient(); !errors.As(err, &r) || r.Key != "@example.org" || r.Limit != sendlimit.RecipientsPerMessage {
		t.Errorf("carol's 51st recipient: %v, want the domain's recipients per message", err)
	}
}
