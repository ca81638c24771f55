package sqldir

import (
	"context"
	gosql "database/sql"
	"fmt"

	"github.com/vmaild/vmaild/schema"
	"github.com/vmaild/vmaild/userdb"
)

// migrateLockTimeout is how long Migrate waits (seconds) for another
// vmaild instance that is migrating the same MySQL database.
const migrateLockTimeout = 60

// execQueryer is what a migration runs on: a pinned connection (mysql) or
// a transaction (sqlite).
type execQueryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (gosql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*gosql.Rows, error)
}

// Migrate brings vmaild's schema up to date and returns the names of the
// migrations it applied (none when the schema was current). It is safe to
// run at every start and from several instances at once.
//
// On SQLite everything runs in one IMMEDIATE transaction, so a failed
// migration leaves nothing behind. MySQL commits every DDL statement
// implicitly; there a named lock serialises instances and every statement
// is written to be re-runnable (IF NOT EXISTS), so a migration that failed
// half-way completes on the next run.
func (d *DB) Migrate(ctx context.Context) ([]string, error) {
	ms, err := schema.Migrations(d.driver)
	if err != nil {
		return nil, err
	}
	// Migrations may take longer than a lookup; the caller's context rules.
	if d.driver == driverMySQL {
		return d.migrateMySQL(ctx, ms)
	}
	var applied []string
	err = d.inTx(ctx, "sql migrate", func(tx *gosql.Tx) error {
		applied, err = applyMigrations(ctx, tx, ms)
		return err
	})
	if err != nil {
		return nil, err
	}
	return applied, nil
}

func (d *DB) migrateMySQL(ctx context.Context, ms []schema.Migration) ([]string, error) {
	const op = "sql migrate"
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return nil, classify(op, err)
	}
	defer conn.Close()
	var got gosql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('vmaild.migrate', ?)", migrateLockTimeout).Scan(&got); err != nil {
		return nil, classify(op+": lock", err)
	}
	if got.Int64 != 1 {
		return nil, userdb.Unavailable(op, fmt.Errorf("another instance holds the migration lock (waited %ds)", migrateLockTimeout))
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK('vmaild.migrate')")
	applied, err := applyMigrations(ctx, conn, ms)
	if err != nil {
		return applied, classify(op, err)
	}
	return applied, nil
}

// appliedVersions reads schema_version; a database without it has none.
func appliedVersions(ctx context.Context, db execQueryer) (map[int]bool, error) {
	done := map[int]bool{}
	rows, err := db.QueryContext(ctx, "SELECT version FROM schema_version")
	switch {
	case err == nil:
		defer rows.Close()
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				return nil, fmt.Errorf("read schema_version: %w", err)
			}
			done[v] = true
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read schema_version: %w", err)
		}
	case isNoTable(err):
		// A fresh database: 0001 creates schema_version.
	default:
		return nil, fmt.Errorf("read schema_version: %w", err)
	}
	return done, nil
}

// applyMigrations runs the migrations schema_version does not list yet.
func applyMigrations(ctx context.Context, db execQueryer, ms []schema.Migration) ([]string, error) {
	done, err := appliedVersions(ctx, db)
	if err != nil {
		return nil, err
	}

	var applied []string
	for _, m := range ms {
		if done[m.Version] {
			continue
		}
		for i, stmt := range m.Statements() {
			if _, err := db.ExecContext(ctx, stmt); err != nil && !isDuplicateColumn(err) {
				return applied, fmt.Errorf("%s statement %d: %w", m.Name, i+1, err)
			}
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO schema_version (version, name) VALUES (?, ?)", m.Version, m.Name); err != nil {
			return applied, fmt.Errorf("%s: record version: %w", m.Name, err)
		}
		applied = append(applied, m.Name)
	}
	return applied, nil
}
