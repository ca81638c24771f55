package sqldir

import (
	"errors"
	"reflect"
	"testing"

	"github.com/vmaild/vmaild/userdb"
)

func testSenderMap(t *testing.T, e engine) {
	d := e.open(t, Queries{})
	seed(t, d)
	c := ctx(t)
	for _, g := range [][2]string{
		{"ceo@example.com", "alice@example.com"},
		{"CEO@Example.com", "bob@example.com"},
		{"@example.net", "dave@example.com"},
		{"newsletter@remote.example", "bob@example.com"},
	} {
		if err := d.AddSender(c, g[0], g[1]); err != nil {
			t.Fatalf("AddSender(%s, %s): %v", g[0], g[1], err)
		}
	}
	if err := d.AddSender(c, "ceo@example.com", "Alice@example.com"); !errors.Is(err, userdb.ErrExists) {
		t.Errorf("duplicate grant: %v, want ErrExists", err)
	}
	for _, bad := range [][2]string{{"ceo@", "alice@example.com"}, {"@", "alice@example.com"}, {"ceo@example.com", "alice"}, {"ceo@example.com", "@example.com"}} {
		if err := d.AddSender(c, bad[0], bad[1]); !errors.Is(err, userdb.ErrInvalid) {
			t.Errorf("AddSender(%q, %q) = %v, want ErrInvalid", bad[0], bad[1], err)
		}
	}

	lookups := []struct {
		key  string
		want []string
	}{
		{"ceo@example.com", []string{"alice@example.com", "bob@example.com"}},
		{"Ceo@EXAMPLE.com", []string{"alice@example.com", "bob@example.com"}},
		{"@example.net", []string{"dave@example.com"}},
		{"anyone@example.net", nil}, // the domain's row is asked for by its own key
		{"sales@example.com", nil},  // an alias grants nothing
		{"@other.org", nil},         // nor does a catch-all
		{"newsletter@remote.example", []string{"bob@example.com"}},
	}
	for _, tt := range lookups {
		if got, err := d.SenderLogins(c, tt.key); err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SenderLogins(%s) = %q, %v; want %q", tt.key, got, err, tt.want)
		}
	}

	if got, err := d.ListSenders(c, "example.com"); err != nil || !reflect.DeepEqual(got, []userdb.SenderGrant{
		{Address: "ceo@example.com", Login: "alice@example.com"}, {Address: "ceo@example.com", Login: "bob@example.com"},
	}) {
		t.Errorf("ListSenders(example.com) = %+v, %v", got, err)
	}
	if got, err := d.ListSenders(c, ""); err != nil || len(got) != 4 {
		t.Errorf("ListSenders() = %+v, %v", got, err)
	}

	if err := d.DeleteSender(c, "ceo@example.com", "bob@example.com"); err != nil {
		t.Errorf("delete one grant: %v", err)
	}
	if err := d.DeleteSender(c, "ceo@example.com", "bob@example.com"); !errors.Is(err, userdb.ErrNotFound) {
		t.Errorf("delete it again: %v, want ErrNotFound", err)
	}
	if got, _ := d.SenderLogins(c, "ceo@example.com"); !reflect.DeepEqual(got, []string{"alice@example.com"}) {
		t.Errorf("after deleting bob's grant: %q", got)
	}
	if err := d.DeleteSender(c, "@example.net", ""); err != nil {
		t.Errorf("delete every grant of an address: %v", err)
	}

	// Grants go with the account that holds them and with the domain of
	// the addresses they are for, so neither passes to a later owner of
	// the same name.
	if err := d.AddSender(c, "info@example.net", "dave@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteAccount(c, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.SenderLogins(c, "ceo@example.com"); len(got) != 0 {
		t.Errorf("grants of a deleted account: %q", got)
	}
	if err := d.DeleteDomain(c, "example.net"); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.SenderLogins(c, "info@example.net"); len(got) != 0 {
		t.Errorf("grants in a deleted domain: %q", got)
	}
	if got, _ := d.SenderLogins(c, "newsletter@remote.example"); !reflect.DeepEqual(got, []string{"bob@example.com"}) {
		t.Errorf("unrelated grant lost: %q", got)
	}

	// An override may return a comma-separated list, as PostfixAdmin's
	// alias.goto holds one.
	o := e.open(t, Queries{SenderLogins: "SELECT 'alice@example.com, bob@example.com' WHERE :address = 'team@example.com'"})
	if got, err := o.SenderLogins(c, "team@example.com"); err != nil || !reflect.DeepEqual(got, []string{"alice@example.com", "bob@example.com"}) {
		t.Errorf("override with a list = %q, %v", got, err)
	}
}
