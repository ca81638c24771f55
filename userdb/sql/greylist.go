package sqldir

import (
	"context"
	gosql "database/sql"
	"errors"
	"fmt"
	"time"
)

// GreylistEntry is one greylisting triplet's row (table greylist). The
// greylisting rules live in backend/greylist; the directory only keeps
// the rows, because it is the database every instance of a cluster
// shares.
type GreylistEntry struct {
	FirstSeen, LastSeen time.Time
	Passed              bool
}

// The statements use the built-in schema only: greylisting is vmaild's
// own table, never an admin's existing one.
const (
	greylistGet = "SELECT first_seen, last_seen, passed FROM greylist WHERE client = ? AND sender = ? AND recipient = ?"
	// Both upserts overwrite the whole row: the last writer of a triplet
	// wins, which at worst greylists a sender one round more.
	greylistPutMySQL = "INSERT INTO greylist (client, sender, recipient, first_seen, last_seen, passed) VALUES (?, ?, ?, ?, ?, ?)" +
		" ON DUPLICATE KEY UPDATE first_seen = VALUES(first_seen), last_seen = VALUES(last_seen), passed = VALUES(passed)"
	greylistPutSQLite = "INSERT INTO greylist (client, sender, recipient, first_seen, last_seen, passed) VALUES (?, ?, ?, ?, ?, ?)" +
		" ON CONFLICT (client, sender, recipient) DO UPDATE SET first_seen = excluded.first_seen, last_seen = excluded.last_seen, passed = excluded.passed"
	greylistExpire = "DELETE FROM greylist WHERE last_seen < ?"
)

// GreylistGet returns the row of a triplet; found is false when there is
// none.
func (d *DB) GreylistGet(ctx context.Context, client, sender, recipient string) (e GreylistEntry, found bool, err error) {
	const op = "sql greylist get"
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	var first, last int64
	var passed bool
	err = d.db.QueryRowContext(ctx, greylistGet, client, sender, recipient).Scan(&first, &last, &passed)
	if errors.Is(err, gosql.ErrNoRows) {
		return GreylistEntry{}, false, nil
	}
	if err != nil {
		return GreylistEntry{}, false, classify(fmt.Sprintf("%s %s %q %q", op, client, sender, recipient), err)
	}
	return GreylistEntry{FirstSeen: time.Unix(first, 0), LastSeen: time.Unix(last, 0), Passed: passed}, true, nil
}

// GreylistPut creates or replaces the row of a triplet.
func (d *DB) GreylistPut(ctx context.Context, client, sender, recipient string, e GreylistEntry) error {
	const op = "sql greylist put"
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	q := greylistPutSQLite
	if d.driver == driverMySQL {
		q = greylistPutMySQL
	}
	_, err := d.db.ExecContext(ctx, q, client, sender, recipient, e.FirstSeen.Unix(), e.LastSeen.Unix(), e.Passed)
	return classify(fmt.Sprintf("%s %s %q %q", op, client, sender, recipient), err)
}

// GreylistExpire deletes the rows last seen before a time.
func (d *DB) GreylistExpire(ctx context.Context, before time.Time) (int64, error) {
	const op = "sql greylist expire"
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	res, err := d.db.ExecContext(ctx, greylistExpire, before.Unix())
	if err != nil {
		return 0, classify(op, err)
	}
	return res.RowsAffected()
}
