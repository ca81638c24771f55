package sqldir

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/userdb"
)

// hostile are inputs an attacker types as login, password or address.
// Some are refused by canonicalisation; the ones that are valid addresses
// (quotes and wildcards are legal in local parts) reach the database and
// prove the statements are parameterised.
var hostile = []string{
	`' OR '1'='1`,
	`alice@example.com' -- `,
	`alice@example.com' OR '1'='1`,
	`x'or'1'='1@example.com`,
	`alice'--@example.com`,
	`'; DROP TABLE accounts; --@example.com`,
	`%`,
	`%@example.com`,
	`_`,
	`_____@example.com`,
	`*@example.com`,
	`alice@example.com` + "\x00",
	"alice\x00@example.com",
	"\x00",
	`@example.com`,
	`alice@%`,
	strings.Repeat("a", 10*1024),
	strings.Repeat("a", 10*1024) + "@example.com",
	"alice@" + strings.Repeat("example.", 1300) + "com",
}

func testHostile(t *testing.T, e engine) {
	d := e.open(t, Queries{})
	seed(t, d)
	c := ctx(t)
	for _, h := range hostile {
		name := h
		if len(name) > 40 {
			name = name[:40] + "…"
		}
		t.Run(name, func(t *testing.T) {
			if a, err := d.LookupAccount(c, h); a != nil || !errors.Is(err, userdb.ErrNotFound) {
				t.Errorf("lookup account: %+v, %v", a, err)
			}
			// As a login with a real password, and as the password.
			for _, try := range [][2]string{{h, "secret"}, {"alice@example.com", h}, {h, h}} {
				a, err := d.Authenticate(c, try[0], try[1])
				if a != nil || err == nil || userdb.Temporary(err) {
					t.Errorf("authenticate(%.40q, %.40q): %+v, %v", try[0], try[1], a, err)
				}
			}
			if dom, err := d.LookupDomain(c, h); dom != nil || !errors.Is(err, userdb.ErrNotFound) {
				t.Errorf("lookup domain: %+v, %v", dom, err)
			}
			if got, err := d.LookupAliases(c, h); len(got) != 0 || userdb.Temporary(err) {
				t.Errorf("lookup aliases: %q, %v", got, err)
			}
			if got, err := d.SenderLogins(c, h); len(got) != 0 || userdb.Temporary(err) {
				t.Errorf("sender logins: %q, %v", got, err)
			}
			if u, err := d.Usage(c, h); u != (userdb.Usage{}) || userdb.Temporary(err) {
				t.Errorf("usage: %+v, %v", u, err)
			}
			if err := d.AddUsage(c, h, 1, 1); err == nil {
				// Valid addresses may get a usage row; it must be their own.
				if u, _ := d.Usage(c, "alice@example.com"); u != (userdb.Usage{}) {
					t.Errorf("add usage for %.40q changed alice's usage: %+v", h, u)
				}
			}
		})
	}

	// Hostile text stored as data comes back byte for byte.
	name := `Robert'); DROP TABLE accounts; -- "Bobby" \ %_`
	if err := d.AddAccount(c, userdb.Account{Address: "x'or'1'='1@example.com", Name: name, Active: true}, "{PLAIN}' OR '1'='1"); err != nil {
		t.Fatal(err)
	}
	a, err := d.Authenticate(c, "x'or'1'='1@example.com", "' OR '1'='1")
	if err != nil || a.Name != name {
		t.Fatalf("round trip: %+v, %v", a, err)
	}
	if _, err := d.Authenticate(c, "x'or'1'='1@example.com", "anything"); !errors.Is(err, userdb.ErrBadCredentials) {
		t.Fatalf("hostile account, wrong password: %v", err)
	}
	// The directory is intact.
	all, err := d.ListAccounts(c, "example.com")
	if err != nil || len(all) != 5 {
		t.Fatalf("after hostile input: %d accounts, %v", len(all), err)
	}
	if got, _ := d.LookupAliases(c, "sales@example.com"); !reflect.DeepEqual(got, []string{"alice@example.com", "bob@example.com"}) {
		t.Fatalf("aliases after hostile input: %q", got)
	}
}
