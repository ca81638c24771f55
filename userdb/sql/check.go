package sqldir

import (
	"context"
	gosql "database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
)

// ErrNoDatabase is Check's answer for an SQLite file that does not exist
// yet: not a fault, the first `vmaild serve` (or `db migrate`) creates it.
var ErrNoDatabase = errors.New("no database file yet")

// Check connects to the configured database and asks it one question,
// changing nothing on disk: an SQLite file is opened read-only and
// immutable (no journal, no -wal or -shm files), and a missing one is not
// created. It is what `vmaild config check` asks of SQL.
func Check(ctx context.Context, c Config) error {
	if c.Driver != driverSQLite {
		db, err := Open(ctx, c)
		if err != nil {
			return err
		}
		defer db.Close()
		return db.Ping(ctx)
	}
	if _, err := sqliteDSN(c.DSN, DefaultTimeout); err != nil {
		return err
	}
	fi, err := os.Stat(c.DSN)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("sql: sqlite %q: %w", c.DSN, ErrNoDatabase)
	case err != nil:
		return fmt.Errorf("sql: sqlite %q: %w", c.DSN, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("sql: sqlite %q: not a regular file", c.DSN)
	}
	u := url.URL{Scheme: "file", Path: c.DSN, RawQuery: "mode=ro&immutable=1"}
	db, err := gosql.Open("sqlite", u.String())
	if err != nil {
		return fmt.Errorf("sql: sqlite %q: %w", c.DSN, err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		return fmt.Errorf("sql: sqlite %q: %w", c.DSN, err)
	}
	return nil
}
