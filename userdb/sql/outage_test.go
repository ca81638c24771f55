package sqldir

import (
	"errors"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/testsrv"
	"github.com/vmaild/vmaild/userdb"
)

// TestMariaDBOutage stops mariadbd under an open *DB: every read and quota
// call must say "try later", never "no such user" or "wrong password"; when
// the server is back the same *DB answers again without being reopened.
func TestMariaDBOutage(t *testing.T) {
	m := testsrv.StartMariaDB(t)
	d := openDB(t, Config{Driver: "mysql", DSN: m.DSN})
	seed(t, d)
	c := ctx(t)

	ops := []struct {
		name string
		run  func() error
	}{
		{"lookup account", func() error { _, err := d.LookupAccount(c, "alice@example.com"); return err }},
		{"lookup unknown account", func() error {
			_, err := d.LookupAccount(c, "nobody@example.com")
			return ignore(err, userdb.ErrNotFound)
		}},
		{"authenticate", func() error { _, err := d.Authenticate(c, "alice@example.com", "secret"); return err }},
		{"authenticate wrong password", func() error {
			_, err := d.Authenticate(c, "alice@example.com", "wrong")
			return ignore(err, userdb.ErrBadCredentials)
		}},
		{"lookup domain", func() error { _, err := d.LookupDomain(c, "example.com"); return err }},
		{"lookup aliases", func() error { _, err := d.LookupAliases(c, "sales@example.com"); return err }},
		{"usage", func() error { _, err := d.Usage(c, "alice@example.com"); return err }},
		{"add usage", func() error { return d.AddUsage(c, "alice@example.com", 1, 1) }},
		{"reserve usage", func() error {
			_, err := d.ReserveUsage(c, "alice@example.com", 1, 1, userdb.Limit{Bytes: 1 << 20})
			return err
		}},
		{"list accounts", func() error { _, err := d.ListAccounts(c, ""); return err }},
		{"delete account", func() error { return ignore(d.DeleteAccount(c, "nobody@example.com"), userdb.ErrNotFound) }},
		{"ping", func() error { return d.Ping(c) }},
	}
	check := func(phase string) {
		t.Helper()
		for _, op := range ops {
			if err := op.run(); err != nil {
				t.Errorf("%s: %s: %v", phase, op.name, err)
			}
		}
	}
	check("before outage")

	m.Stop()
	for _, op := range ops {
		err := op.run()
		if !errors.Is(err, userdb.ErrUnavailable) {
			t.Errorf("during outage: %s: err = %v, want ErrUnavailable", op.name, err)
		}
		for _, no := range []error{userdb.ErrNotFound, userdb.ErrBadCredentials, userdb.ErrExists} {
			if errors.Is(err, no) {
				t.Errorf("during outage: %s: answered %v", op.name, no)
			}
		}
	}

	m.Start()
	check("after restart")
}

// ignore turns the expected "no" answer into success, so an op table can
// hold both positive and negative lookups.
func ignore(err, expected error) error {
	if errors.Is(err, expected) {
		return nil
	}
	if err == nil {
		return errors.New("unexpected success")
	}
	return err
}

// TestMariaDBHung freezes mariadbd: nothing is refused, nothing answers.
// The operation timeout must turn that into "try later", and the same *DB
// must work once the server continues.
func TestMariaDBHung(t *testing.T) {
	m := testsrv.StartMariaDB(t)
	d := openDB(t, Config{Driver: "mysql", DSN: m.DSN, Timeout: time.Second})
	seed(t, d)
	c := ctx(t)
	ops := []struct {
		name string
		run  func() error
	}{
		{"lookup account", func() error { _, err := d.LookupAccount(c, "alice@example.com"); return err }},
		{"authenticate", func() error { _, err := d.Authenticate(c, "alice@example.com", "secret"); return err }},
		{"reserve usage", func() error {
			_, err := d.ReserveUsage(c, "alice@example.com", 1, 1, userdb.Limit{Bytes: 1 << 20})
			return err
		}},
	}
	m.Pause()
	for _, op := range ops {
		if err := op.run(); !errors.Is(err, userdb.ErrUnavailable) {
			t.Errorf("hung server: %s: err = %v, want ErrUnavailable", op.name, err)
		}
	}
	m.Resume()
	for _, op := range ops {
		if err := op.run(); err != nil {
			t.Errorf("after resume: %s: %v", op.name, err)
		}
	}
}
