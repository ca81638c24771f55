package sqldir

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vmaild/vmaild/userdb"
)

func lim(v int64) *int64 { return &v }

// show prints limits as "messages/h rcpts/msg rcpts/h", "-" for unset.
func show(l userdb.SendLimits) string {
	f := func(p *int64) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprint(*p)
	}
	return f(l.MessagesPerHour) + " " + f(l.RecipientsPerMessage) + " " + f(l.RecipientsPerHour)
}

// TestSendLimits reads the sending-limit columns of accounts and domains,
// on SQLite and MariaDB, through the send_limits query.
func TestSendLimits(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			d := e.open(t, Queries{})
			seed(t, d)
			c := ctx(t)
			if err := d.SetSendLimits(c, "bob@example.com", userdb.SendLimits{MessagesPerHour: lim(5), RecipientsPerHour: lim(0)}); err != nil {
				t.Fatal(err)
			}
			if err := d.SetSendLimits(c, "example.com", userdb.SendLimits{RecipientsPerMessage: lim(20)}); err != nil {
				t.Fatal(err)
			}
			if err := d.SetSendLimits(c, "nobody@example.com", userdb.SendLimits{}); !errors.Is(err, userdb.ErrNotFound) {
				t.Errorf("SetSendLimits of an unknown account: %v, want ErrNotFound", err)
			}
			for _, tc := range []struct{ address, domain, account, dom string }{
				{"bob@example.com", "example.com", "5 - 0", "- 20 -"},
				{"alice@example.com", "example.com", "- - -", "- 20 -"},
				// An account kept elsewhere (LDAP), a domain with no row.
				{"ldap-only@example.com", "example.com", "- - -", "- 20 -"},
				{"bob@example.com", "nowhere.example", "5 - 0", "- - -"},
			} {
				a, dom, err := d.SendLimits(c, tc.address, tc.domain)
				if err != nil {
					t.Fatalf("SendLimits(%s): %v", tc.address, err)
				}
				if show(a) != tc.account || show(dom) != tc.dom {
					t.Errorf("SendLimits(%s, %s) = %q, %q; want %q, %q", tc.address, tc.domain, show(a), show(dom), tc.account, tc.dom)
				}
			}
		})
	}
}

// TestSendLimitsForeignSchema: an installation that overrides the account
// query (PostfixAdmin) and not send_limits has no limits in SQL, rather
// than a query that fails at every message.
func TestSendLimitsForeignSchema(t *testing.T) {
	d := openDB(t, Config{Driver: "sqlite", DSN: t.TempDir() + "/v.db", Queries: Queries{
		Account: "SELECT address, name, active, quota_bytes, quota_messages, maildir FROM accounts WHERE address = :address",
	}})
	a, dom, err := d.SendLimits(ctx(t), "bob@example.com", "example.com")
	if err != nil || show(a) != "- - -" || show(dom) != "- - -" {
		t.Errorf("SendLimits = %q, %q, %v; want nothing set", show(a), show(dom), err)
	}
}

// TestMigrationResumesAfterAlter: MySQL commits each ALTER by itself, so
// a migration interrupted after one of them runs again over columns that
// exist.
func TestMigrationResumesAfterAlter(t *testing.T) {
	for _, e := range engines(t) {
		if e.name != "mysql" {
			continue
		}
		d := e.open(t, Queries{})
		c := ctx(t)
		if _, err := d.db.ExecContext(c, "DELETE FROM schema_version WHERE version = 3"); err != nil {
			t.Fatal(err)
		}
		if _, err := d.db.ExecContext(c, "ALTER TABLE domains DROP COLUMN send_messages_per_hour, DROP COLUMN send_recipients_per_message, DROP COLUMN send_recipients_per_hour"); err != nil {
			t.Fatal(err)
		}
		applied, err := d.Migrate(c)
		if err != nil || len(applied) != 1 {
			t.Fatalf("migrate again: %v, %v; want 0003 applied", applied, err)
		}
		if _, _, err := d.SendLimits(c, "a@example.com", "example.com"); err != nil {
			t.Fatal(err)
		}
	}
}
