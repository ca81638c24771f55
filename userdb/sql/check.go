package sqldir

import (
	"context"
	gosql "database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"

	"github.com/vmaild/vmaild/schema"
)

// ErrNoDatabase is Check's answer for an SQLite file that does not exist
// yet: not a fault, the first `vmaild serve` (or `db migrate`) creates it.
var ErrNoDatabase = errors.New("no database file yet")

// Check connects to the configured database and returns the names of
// the schema migrations it still lacks (`vmaild db migrate` applies them),
// changing nothing: an SQLite file is opened read-only and immutable (no
// journal, no -wal or -shm files), and a missing one is not created. It is
// what `vmaild config check` asks of SQL.
func Check(ctx context.Context, c Config) (pending []string, err error) {
	if c.Driver != driverSQLite {
		db, err := Open(ctx, c)
		if err != nil {
			return nil, err
		}
		defer db.Close()
		if err := db.Ping(ctx); err != nil {
			return nil, err
		}
		ctx, cancel := db.opContext(ctx)
		defer cancel()
		return pendingMigrations(ctx, db.db, c.Driver)
	}
	if _, err := sqliteDSN(c.DSN, DefaultTimeout); err != nil {
		return nil, err
	}
	fi, err := os.Stat(c.DSN)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("sql: sqlite %q: %w", c.DSN, ErrNoDatabase)
	case err != nil:
		return nil, fmt.Errorf("sql: sqlite %q: %w", c.DSN, err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("sql: sqlite %q: not a regular file", c.DSN)
	}
	u := url.URL{Scheme: "file", Path: c.DSN, RawQuery: "mode=ro&immutable=1"}
	db, err := gosql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("sql: sqlite %q: %w", c.DSN, err)
	}
	defer db.Close()
	pending, err = pendingMigrations(ctx, db, driverSQLite)
	if err != nil {
		return nil, fmt.Errorf("sql: sqlite %q: %w", c.DSN, err)
	}
	return pending, nil
}

// pendingMigrations reads schema_version as applyMigrations does and
// names the migrations not in it.
func pendingMigrations(ctx context.Context, db *gosql.DB, driver string) ([]string, error) {
	ms, err := schema.Migrations(driver)
	if err != nil {
		return nil, err
	}
	done, err := appliedVersions(ctx, db)
	if err != nil {
		return nil, classify("sql check", err)
	}
	var pending []string
	for _, m := range ms {
		if !done[m.Version] {
			pending = append(pending, m.Name)
		}
	}
	return pending, nil
}
