package userdb_test

import (
	"context"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/userdb"
)

// checkSenderRights: who may send as what, over every backend setup (run
// from TestDirectoryBackends, which seeds the grants: bob → sales@, carol
// → @example.org in the SQL map; frank → postmaster@example.org and
// @news.example.org on his LDAP entry, or in the SQL map where accounts are
// in SQL).
func checkSenderRights(t *testing.T, u *userdb.Users) {
	ctx := context.Background()
	for _, tt := range []struct {
		why, account, address string
		want                  bool
	}{
		{"own address", "alice@example.com", "alice@example.com", true},
		{"own address, other case", "alice@example.com", "ALICE@Example.COM", true},
		{"plus form", "alice@example.com", "alice+lists@example.com", true},
		{"alias domain", "alice@example.com", "alice@alias.example", true},
		{"plus form in the alias domain", "alice@example.com", "alice+x@alias.example", true},
		{"same local part, unrelated domain", "alice@example.com", "alice@example.org", false},
		{"someone else's address", "alice@example.com", "bob@example.com", false},
		{"someone else's plus form", "alice@example.com", "bob+alice@example.com", false},
		{"map entry", "bob@example.com", "sales@example.com", true},
		{"map entry, plus form", "bob@example.com", "sales+q3@example.com", true},
		{"map entry is for that address only", "bob@example.com", "all@example.com", false},
		{"@domain map entry", "carol@example.org", "ceo@example.org", true},
		{"@domain map entry, plus form", "carol@example.org", "ceo+x@example.org", true},
		{"@domain map entry is for that domain only", "carol@example.org", "ceo@example.com", false},
		{"account entry grant", "frank@example.org", "postmaster@example.org", true},
		{"account entry @domain grant", "frank@example.org", "anyone@news.example.org", true},
		{"account entry @domain grant, not subdomains", "frank@example.org", "anyone@sub.news.example.org", false},
		{"catch-all owner (domain catchall)", "bob@example.com", "ceo@catch.example", false},
		{"catch-all owner (@domain alias)", "dave@example.org", "ceo@example.org", false},
		{"catch-all owner's own address", "dave@example.org", "dave@example.org", true},
		{"alias member", "alice@example.com", "sales@example.com", false},
		{"other alias member", "carol@example.org", "sales@example.com", false},
		{"member of a nested alias", "alice@example.com", "all@example.com", false},
		{"unknown address", "alice@example.com", "nobody@example.com", false},
		{"remote address", "alice@example.com", "alice@remote.test", false},
		{"unknown account", "nobody@example.com", "sales@example.com", false},
		{"malformed address", "alice@example.com", "alice@@example.com", false},
		{"empty address", "alice@example.com", "", false},
		{"injection", "bob@example.com", "sales@example.com' OR '1'='1", false},
		{"wildcard", "bob@example.com", "*@example.com", false},
	} {
		got, err := u.MaySendAs(ctx, tt.account, tt.address)
		if err != nil || got != tt.want {
			t.Errorf("%s: MaySendAs(%s, %q) = %v, %v; want %v", tt.why, tt.account, tt.address, got, err, tt.want)
		}
	}
	// The same rights asked the other way round, as Postfix's
	// smtpd_sender_login_maps asks: owners first, then the map's grants.
	for _, tt := range []struct {
		address string
		want    string
	}{
		{"alice@example.com", "alice@example.com"},
		{"ALICE+lists@Example.COM", "alice@example.com"},
		{"alice@alias.example", "alice@example.com"},
		{"sales@example.com", "bob@example.com"},
		{"sales+q3@example.com", "bob@example.com"},
		{"ceo@example.org", "carol@example.org"},
		{"dave@example.org", "dave@example.org carol@example.org"},
		{"ceo@catch.example", ""},
		{"nobody@example.com", ""},
		{"alice@remote.test", ""},
		{"alice@@example.com", ""},
	} {
		got, err := u.SenderLogins(ctx, tt.address)
		if err != nil || strings.Join(got, " ") != tt.want {
			t.Errorf("SenderLogins(%q) = %q, %v; want %q", tt.address, got, err, tt.want)
		}
	}
}

// checkSenderOutage: a directory that does not answer is "try later",
// never "no"; the account's own address needs no lookup at all.
func checkSenderOutage(t *testing.T, u *userdb.Users, down string) {
	ctx := context.Background()
	if ok, err := u.MaySendAs(ctx, "alice@example.com", "alice@example.com"); !ok || err != nil {
		t.Errorf("%s down: own address = %v, %v", down, ok, err)
	}
	// frank's grant is on his account entry, bob's in the SQL map, and
	// alice's alias domain is a domain lookup.
	cases := [][2]string{{"frank@example.org", "postmaster@example.org"}}
	if down == "domains" {
		cases = [][2]string{{"bob@example.com", "sales@example.com"}, {"alice@example.com", "alice@alias.example"}}
	}
	for _, c := range cases {
		ok, err := u.MaySendAs(ctx, c[0], c[1])
		if ok || !userdb.Temporary(err) {
			t.Errorf("%s down: MaySendAs(%s, %s) = %v, %v; want a temporary error", down, c[0], c[1], ok, err)
		}
		if err != nil && !strings.Contains(err.Error(), c[0]) {
			t.Errorf("error does not name the account: %v", err)
		}
		if logins, err := u.SenderLogins(ctx, c[1]); !userdb.Temporary(err) {
			t.Errorf("%s down: SenderLogins(%s) = %q, %v; want a temporary error", down, c[1], logins, err)
		}
	}
}
