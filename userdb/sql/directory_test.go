package sqldir

import (
	"errors"
	"reflect"
	"testing"

	"github.com/vmaild/vmaild/schema"
	"github.com/vmaild/vmaild/userdb"
)

// The contracts this package promises to the rest of vmaild.
var (
	_ userdb.AccountSource = (*DB)(nil)
	_ userdb.DomainSource  = (*DB)(nil)
	_ userdb.QuotaStore    = (*DB)(nil)
	_ userdb.AccountAdmin  = (*DB)(nil)
	_ userdb.DomainAdmin   = (*DB)(nil)
	_ userdb.SenderMap     = (*DB)(nil)
	_ userdb.SenderAdmin   = (*DB)(nil)
	_ userdb.Bounded       = (*DB)(nil)
	_ userdb.QuotaBatcher  = (*DB)(nil)
)

// TestDirectory runs the same cases against SQLite and a real MariaDB.
func TestDirectory(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			t.Run("migrate", func(t *testing.T) { testMigrate(t, e) })
			t.Run("lookup account", func(t *testing.T) { testLookupAccount(t, e) })
			t.Run("authenticate", func(t *testing.T) { testAuthenticate(t, e) })
			t.Run("lookup domain", func(t *testing.T) { testLookupDomain(t, e) })
			t.Run("lookup aliases", func(t *testing.T) { testLookupAliases(t, e) })
			t.Run("account admin", func(t *testing.T) { testAccountAdmin(t, e) })
			t.Run("domain admin", func(t *testing.T) { testDomainAdmin(t, e) })
			t.Run("sender map", func(t *testing.T) { testSenderMap(t, e) })
			t.Run("quota", func(t *testing.T) { testQuota(t, e) })
			t.Run("quota concurrent", func(t *testing.T) { testQuotaConcurrent(t, e) })
			t.Run("quota batch", func(t *testing.T) { testQuotaBatch(t, e) })
			t.Run("hostile input", func(t *testing.T) { testHostile(t, e) })
			t.Run("foreign schema", func(t *testing.T) { testForeignSchema(t, e) })
			if e.name == "mysql" {
				t.Run("postfixadmin", func(t *testing.T) { testPostfixAdmin(t, e) })
			}
		})
	}
}

func testMigrate(t *testing.T, e engine) {
	d, err := Open(ctx(t), Config{Driver: e.name, DSN: e.dsn(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i, want := range [][]string{{"0001_init.sql", "0002_sender_logins.sql", "0003_send_limits.sql", "0004_greylist.sql"}, nil, nil} {
		got, err := d.Migrate(ctx(t))
		if err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("run %d applied %q, want %q", i+1, got, want)
		}
	}
	// The schema works after migrating twice.
	if err := d.AddDomain(ctx(t), userdb.Domain{Name: "example.com", Active: true}); err != nil {
		t.Fatal(err)
	}

	// A database of the first version is brought up to date.
	old, err := Open(ctx(t), Config{Driver: e.name, DSN: e.dsn(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	ms, err := schema.Migrations(e.name)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := applyMigrations(ctx(t), old.db, ms[:1]); err != nil || len(got) != 1 {
		t.Fatalf("version 1: %q, %v", got, err)
	}
	if got, err := old.Migrate(ctx(t)); err != nil || !reflect.DeepEqual(got, []string{"0002_sender_logins.sql", "0003_send_limits.sql", "0004_greylist.sql"}) {
		t.Fatalf("upgrade applied %q, %v", got, err)
	}
	if err := old.AddSender(ctx(t), "ceo@example.com", "alice@example.com"); err != nil {
		t.Fatalf("sender map after the upgrade: %v", err)
	}
}

func testLookupAccount(t *testing.T, e engine) {
	d := e.open(t, Queries{})
	seed(t, d)
	tests := []struct {
		address string
		want    *userdb.Account
		err     error
	}{
		{"alice@example.com", &userdb.Account{Address: "alice@example.com", Name: "Alice", Active: true}, nil},
		{"ALICE@Example.COM", &userdb.Account{Address: "alice@example.com", Name: "Alice", Active: true}, nil},
		{"bob@example.com", &userdb.Account{Address: "bob@example.com", Name: "Bob", Active: true, Quota: &userdb.Limit{Bytes: 500, Messages: 5}}, nil},
		{"carol@example.com", &userdb.Account{Address: "carol@example.com", Name: "Carol"}, nil},
		{"dave@example.com", &userdb.Account{Address: "dave@example.com", Active: true, Maildir: "/srv/mail/dave", Quota: &userdb.Limit{}}, nil},
		{"nobody@example.com", nil, userdb.ErrNotFound},
		{"alice@example.net", nil, userdb.ErrNotFound}, // alias domains are resolved by userdb.Users, not here
		{"alice", nil, userdb.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.address, func(t *testing.T) {
			got, err := d.LookupAccount(ctx(t), tt.address)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func testAuthenticate(t *testing.T, e engine) {
	d := e.open(t, Queries{})
	seed(t, d)
	tests := []struct {
		name, address, password string
		err                     error
	}{
		{"plain", "alice@example.com", "secret", nil},
		{"upper-case login", "Alice@EXAMPLE.com", "secret", nil},
		{"ssha512", "bob@example.com", "hunter2", nil},
		{"sha512-crypt, inactive still verifies", "carol@example.com", "carolpw", nil},
		{"wrong password", "alice@example.com", "Secret", userdb.ErrBadCredentials},
		{"other user's password", "bob@example.com", "secret", userdb.ErrBadCredentials},
		{"empty password", "alice@example.com", "", userdb.ErrBadCredentials},
		{"unknown user", "nobody@example.com", "secret", userdb.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := d.Authenticate(ctx(t), tt.address, tt.password)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || a != nil {
					t.Fatalf("got %+v, %v; want %v", a, err, tt.err)
				}
				return
			}
			if err != nil || a == nil || a.Address != canon(tt.address) {
				t.Fatalf("got %+v, %v", a, err)
			}
		})
	}
}

func canon(a string) string {
	c, _ := userdb.Canonical(a)
	return c
}

func testLookupDomain(t *testing.T, e engine) {
	d := e.open(t, Queries{})
	seed(t, d)
	tests := []struct {
		name string
		want *userdb.Domain
		err  error
	}{
		{"example.com", &userdb.Domain{Name: "example.com", Active: true, Quota: userdb.Limit{Bytes: 1000, Messages: 10}}, nil},
		{"EXAMPLE.com", &userdb.Domain{Name: "example.com", Active: true, Quota: userdb.Limit{Bytes: 1000, Messages: 10}}, nil},
		{"example.net", &userdb.Domain{Name: "example.net", Active: true, AliasFor: "example.com"}, nil},
		{"other.org", &userdb.Domain{Name: "other.org", CatchAll: "alice@example.com"}, nil},
		{"example.org", nil, userdb.ErrNotFound},
		{"", nil, userdb.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.LookupDomain(ctx(t), tt.name)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func testLookupAliases(t *testing.T, e engine) {
	d := e.open(t, Queries{})
	seed(t, d)
	tests := []struct {
		source string
		want   []string
	}{
		{"postmaster@example.com", []string{"alice@example.com"}},
		{"sales@example.com", []string{"alice@example.com", "bob@example.com"}},
		{"Sales@Example.com", []string{"alice@example.com", "bob@example.com"}},
		{"@other.org", []string{"alice@example.com"}},
		{"team@example.net", []string{"friend@elsewhere.example"}},
		{"alice@example.com", nil},
		{"@example.com", nil},
		{"sales@example.net", nil},
	}
	for _, tt := range tests {
		t.Run(tt.source, func(t *testing.T) {
			got, err := d.LookupAliases(ctx(t), tt.source)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func testAccountAdmin(t *testing.T, e engine) {
	d := e.open(t, Queries{})
	seed(t, d)
	c := ctx(t)
	mustErr := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", what, err, want)
		}
	}
	mustErr("add existing", d.AddAccount(c, userdb.Account{Address: "alice@example.com", Active: true}, "{PLAIN}x"), userdb.ErrExists)
	mustErr("add existing, other case", d.AddAccount(c, userdb.Account{Address: "ALICE@example.com", Active: true}, "{PLAIN}x"), userdb.ErrExists)
	mustErr("add in unknown domain", d.AddAccount(c, userdb.Account{Address: "eve@nowhere.example", Active: true}, "{PLAIN}x"), userdb.ErrNotFound)
	mustErr("add invalid address", d.AddAccount(c, userdb.Account{Address: "eve example.com"}, "{PLAIN}x"), userdb.ErrInvalid)
	mustErr("add overlong name", d.AddAccount(c, userdb.Account{Address: "eve@example.com", Name: string(make([]byte, 256))}, "{PLAIN}x"), userdb.ErrInvalid)
	mustErr("add NUL in hash", d.AddAccount(c, userdb.Account{Address: "eve@example.com"}, "{PLAIN}a\x00b"), userdb.ErrInvalid)

	// PutAccount creates, then updates; an empty hash keeps the password.
	created, err := d.PutAccount(c, userdb.Account{Address: "erin@example.com", Name: "Erin", Active: true}, "{PLAIN}erinpw")
	if err != nil || !created {
		t.Fatalf("put new: created=%v err=%v", created, err)
	}
	created, err = d.PutAccount(c, userdb.Account{Address: "erin@example.com", Name: "Erin E.", Active: false, Maildir: "/m/erin"}, "")
	if err != nil || created {
		t.Fatalf("put existing: created=%v err=%v", created, err)
	}
	// Putting the same values again is still an update, not a create.
	created, err = d.PutAccount(c, userdb.Account{Address: "erin@example.com", Name: "Erin E.", Active: false, Maildir: "/m/erin"}, "")
	if err != nil || created {
		t.Fatalf("put unchanged: created=%v err=%v", created, err)
	}
	a, err := d.Authenticate(c, "erin@example.com", "erinpw")
	if err != nil || a.Name != "Erin E." || a.Active || a.Maildir != "/m/erin" {
		t.Fatalf("after put: %+v, %v", a, err)
	}

	if err := d.SetPassword(c, "erin@example.com", hash(t, "SSHA256", "newpw")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(c, "erin@example.com", "erinpw"); !errors.Is(err, userdb.ErrBadCredentials) {
		t.Errorf("old password after SetPassword: %v", err)
	}
	if _, err := d.Authenticate(c, "erin@example.com", "newpw"); err != nil {
		t.Errorf("new password: %v", err)
	}
	// Setting the same hash again matches the row and is not "not found".
	h := hash(t, "PLAIN", "same")
	for i := 0; i < 2; i++ {
		if err := d.SetPassword(c, "erin@example.com", h); err != nil {
			t.Fatalf("set same password %d: %v", i, err)
		}
	}
	mustErr("set password unknown", d.SetPassword(c, "nobody@example.com", h), userdb.ErrNotFound)
	mustErr("set empty password", d.SetPassword(c, "erin@example.com", ""), userdb.ErrInvalid)

	if err := d.SetAccountQuota(c, "erin@example.com", &userdb.Limit{Bytes: 42}); err != nil {
		t.Fatal(err)
	}
	if a, _ := d.LookupAccount(c, "erin@example.com"); a == nil || !reflect.DeepEqual(a.Quota, &userdb.Limit{Bytes: 42}) {
		t.Fatalf("quota after set: %+v", a)
	}
	if err := d.SetAccountQuota(c, "erin@example.com", nil); err != nil {
		t.Fatal(err)
	}
	if a, _ := d.LookupAccount(c, "erin@example.com"); a == nil || a.Quota != nil {
		t.Fatalf("quota after reset: %+v", a)
	}
	mustErr("set quota unknown", d.SetAccountQuota(c, "nobody@example.com", nil), userdb.ErrNotFound)

	all, err := d.ListAccounts(c, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range all {
		names = append(names, a.Address)
	}
	want := []string{"alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com", "erin@example.com"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("list all = %q, want %q", names, want)
	}
	if l, err := d.ListAccounts(c, "other.org"); err != nil || len(l) != 0 {
		t.Fatalf("list other.org = %v, %v", l, err)
	}

	// DeleteAccount takes the quota row with it.
	if err := d.AddUsage(c, "erin@example.com", 100, 1); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteAccount(c, "erin@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.LookupAccount(c, "erin@example.com"); !errors.Is(err, userdb.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if u, err := d.Usage(c, "erin@example.com"); err != nil || u != (userdb.Usage{}) {
		t.Fatalf("usage after delete: %+v, %v", u, err)
	}
	mustErr("delete again", d.DeleteAccount(c, "erin@example.com"), userdb.ErrNotFound)
}

func testDomainAdmin(t *testing.T, e engine) {
	d := e.open(t, Queries{})
	seed(t, d)
	c := ctx(t)
	mustErr := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: err = %v, want %v", what, err, want)
		}
	}
	mustErr("add existing domain", d.AddDomain(c, userdb.Domain{Name: "Example.COM"}), userdb.ErrExists)
	mustErr("alias domain of unknown", d.AddDomain(c, userdb.Domain{Name: "x.example", AliasFor: "nowhere.example"}), userdb.ErrNotFound)
	mustErr("invalid domain", d.AddDomain(c, userdb.Domain{Name: "bad domain"}), userdb.ErrInvalid)
	mustErr("invalid catch-all", d.AddDomain(c, userdb.Domain{Name: "y.example", CatchAll: "not an address"}), userdb.ErrInvalid)

	mustErr("delete with accounts", d.DeleteDomain(c, "example.com"), ErrDomainInUse)
	if err := d.DeleteAccount(c, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"bob@example.com", "carol@example.com", "dave@example.com"} {
		if err := d.DeleteAccount(c, a); err != nil {
			t.Fatal(err)
		}
	}
	mustErr("delete alias target", d.DeleteDomain(c, "example.com"), ErrDomainInUse)
	mustErr("delete unknown", d.DeleteDomain(c, "nowhere.example"), userdb.ErrNotFound)

	// Deleting a domain removes its aliases.
	if err := d.DeleteDomain(c, "example.net"); err != nil {
		t.Fatal(err)
	}
	if got, err := d.LookupAliases(c, "team@example.net"); err != nil || got != nil {
		t.Fatalf("aliases of deleted domain: %q, %v", got, err)
	}
	if err := d.DeleteDomain(c, "example.com"); err != nil {
		t.Fatal(err)
	}
	doms, err := d.ListDomains(c)
	if err != nil || len(doms) != 1 || doms[0].Name != "other.org" {
		t.Fatalf("list domains = %+v, %v", doms, err)
	}

	// Aliases.
	mustErr("alias in unknown domain", d.AddAlias(c, "x@nowhere.example", "a@b.example"), userdb.ErrNotFound)
	mustErr("duplicate alias", d.AddAlias(c, "@other.org", "alice@example.com"), userdb.ErrExists)
	mustErr("invalid destination", d.AddAlias(c, "x@other.org", "a b"), userdb.ErrInvalid)
	mustErr("invalid source", d.AddAlias(c, "@", "a@b.example"), userdb.ErrInvalid)
	for _, dst := range []string{"one@b.example", "two@b.example"} {
		if err := d.AddAlias(c, "list@other.org", dst); err != nil {
			t.Fatal(err)
		}
	}
	got, err := d.ListAliases(c, "other.org")
	want := []userdb.Alias{
		{Source: "@other.org", Destination: "alice@example.com"},
		{Source: "list@other.org", Destination: "one@b.example"},
		{Source: "list@other.org", Destination: "two@b.example"},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("list aliases = %+v, %v", got, err)
	}
	if all, err := d.ListAliases(c, ""); err != nil || !reflect.DeepEqual(all, want) {
		t.Fatalf("list all aliases = %+v, %v", all, err)
	}
	if err := d.DeleteAlias(c, "list@other.org", "one@b.example"); err != nil {
		t.Fatal(err)
	}
	mustErr("delete missing alias", d.DeleteAlias(c, "list@other.org", "one@b.example"), userdb.ErrNotFound)
	if err := d.DeleteAlias(c, "@other.org", ""); err != nil {
		t.Fatal(err)
	}
	mustErr("delete missing source", d.DeleteAlias(c, "@other.org", ""), userdb.ErrNotFound)
	if got, _ := d.LookupAliases(c, "list@other.org"); !reflect.DeepEqual(got, []string{"two@b.example"}) {
		t.Fatalf("after deletes: %q", got)
	}
}

// testForeignSchema: with the read queries overridden, admin writes would
// go to tables nothing reads, so they are refused.
func testForeignSchema(t *testing.T, e engine) {
	d := e.open(t, Queries{
		Account: "SELECT address, name, active, quota_bytes, quota_messages, maildir FROM accounts WHERE address = :address",
		Domain:  "SELECT name, active, 0, 0, NULL, NULL FROM domains WHERE name = :domain",
	})
	c := ctx(t)
	for what, err := range map[string]error{
		"add account":    d.AddAccount(c, userdb.Account{Address: "a@example.com"}, "{PLAIN}x"),
		"delete account": d.DeleteAccount(c, "a@example.com"),
		"set password":   d.SetPassword(c, "a@example.com", "{PLAIN}x"),
		"add domain":     d.AddDomain(c, userdb.Domain{Name: "example.com"}),
		"delete domain":  d.DeleteDomain(c, "example.com"),
		"add alias":      d.AddAlias(c, "a@example.com", "b@example.com"),
	} {
		if !errors.Is(err, ErrForeignSchema) {
			t.Errorf("%s: err = %v, want ErrForeignSchema", what, err)
		}
	}
	senders := e.open(t, Queries{SenderLogins: "SELECT login FROM sender_logins WHERE address = :address"})
	_, listErr := senders.ListSenders(c, "")
	for what, err := range map[string]error{
		"add sender":    senders.AddSender(c, "a@example.com", "b@example.com"),
		"delete sender": senders.DeleteSender(c, "a@example.com", ""),
		"list senders":  listErr,
	} {
		if !errors.Is(err, ErrForeignSchema) {
			t.Errorf("%s: err = %v, want ErrForeignSchema", what, err)
		}
	}
}
