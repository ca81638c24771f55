package sqldir

import (
	"context"
	gosql "database/sql"
	"errors"
	"fmt"

	"github.com/vmaild/vmaild/userdb"
)

var _ userdb.SendLimitSource = (*DB)(nil)

// SendLimits implements userdb.SendLimitSource with the send_limits query.
func (d *DB) SendLimits(ctx context.Context, address, domain string) (account, dom userdb.SendLimits, err error) {
	const op = "sql send limits"
	if d.q.sendLimits == nil {
		return account, dom, nil
	}
	key, err := canonicalKey(op, address)
	if err != nil {
		return account, dom, err
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	row, err := d.queryRow(ctx, d.q.sendLimits, params{address: key, domain: domain})
	if err != nil {
		return account, dom, err
	}
	var v [6]gosql.NullInt64
	err = row.Scan(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5])
	if errors.Is(err, gosql.ErrNoRows) {
		return account, dom, nil
	}
	if err != nil {
		return account, dom, classify(fmt.Sprintf("%s %q", op, key), err)
	}
	set := func(n gosql.NullInt64) *int64 {
		if !n.Valid {
			return nil
		}
		return &n.Int64
	}
	account = userdb.SendLimits{MessagesPerHour: set(v[0]), RecipientsPerMessage: set(v[1]), RecipientsPerHour: set(v[2])}
	dom = userdb.SendLimits{MessagesPerHour: set(v[3]), RecipientsPerMessage: set(v[4]), RecipientsPerHour: set(v[5])}
	return account, dom, nil
}

// SetSendLimits sets an account's ("local@domain") or a domain's
// ("domain") sending limits in vmaild's schema; a nil field goes back to
// the configured default.
func (d *DB) SetSendLimits(ctx context.Context, key string, l userdb.SendLimits) error {
	const op = "sql set send limits"
	table, col := "domains", "name"
	name, err := userdb.CanonicalDomain(key)
	if _, _, serr := userdb.Split(key); serr == nil {
		table, col = "accounts", "address"
		name, err = canonicalKey(op, key)
	}
	if err != nil {
		return fmt.Errorf("%s %q: %w", op, key, err)
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	val := func(p *int64) any {
		if p == nil {
			return nil
		}
		return *p
	}
	// The table and column names are ours, never the caller's.
	res, err := d.db.ExecContext(ctx, "UPDATE "+table+" SET send_messages_per_hour = ?,"+
		" send_recipients_per_message = ?, send_recipients_per_hour = ? WHERE "+col+" = ?",
		val(l.MessagesPerHour), val(l.RecipientsPerMessage), val(l.RecipientsPerHour), name)
	if err != nil {
		return classify(fmt.Sprintf("%s %q", op, name), err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("%s %q: %w", op, name, userdb.ErrNotFound)
	}
	return nil
}
