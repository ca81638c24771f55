package sqldir

import (
	"context"
	gosql "database/sql"
	"errors"
	"fmt"

	"github.com/vmaild/vmaild/userdb"
)

// quotaKey canonicalises the address a usage row belongs to.
func quotaKey(op, address string) (string, error) {
	a, err := userdb.Canonical(address)
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	return a, nil
}

// Usage implements userdb.QuotaStore; an address without a row uses
// nothing.
func (d *DB) Usage(ctx context.Context, address string) (userdb.Usage, error) {
	const op = "sql quota usage"
	key, err := quotaKey(op, address)
	if err != nil {
		return userdb.Usage{}, err
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	row, err := d.queryRow(ctx, d.q.quotaUsage, params{address: key})
	if err != nil {
		return userdb.Usage{}, err
	}
	var b, m gosql.NullInt64
	err = row.Scan(&b, &m)
	if errors.Is(err, gosql.ErrNoRows) {
		return userdb.Usage{}, nil
	}
	if err != nil {
		return userdb.Usage{}, classify(fmt.Sprintf("%s %q", op, key), err)
	}
	return userdb.Usage{Bytes: b.Int64, Messages: m.Int64}, nil
}

// AddUsage implements userdb.QuotaStore with one upsert; negative deltas
// (expunge, delete) are clamped at zero in SQL, so a usage that drifted
// low never goes negative.
func (d *DB) AddUsage(ctx context.Context, address string, bytes, messages int64) error {
	const op = "sql quota add"
	key, err := quotaKey(op, address)
	if err != nil {
		return err
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	_, err = d.exec(ctx, d.q.quotaAdd, params{address: key, bytes: bytes, messages: messages})
	return classify(fmt.Sprintf("%s %q", op, key), err)
}

// ReserveUsage implements userdb.QuotaStore: the row is made to exist,
// then one conditional UPDATE adds the amounts only when the result stays
// within limit. The database's row lock orders concurrent reservations, so
// the limit holds exactly however many deliveries race.
func (d *DB) ReserveUsage(ctx context.Context, address string, bytes, messages int64, limit userdb.Limit) (bool, error) {
	const op = "sql quota reserve"
	key, err := quotaKey(op, address)
	if err != nil {
		return false, err
	}
	if bytes < 0 || messages < 0 {
		return false, fmt.Errorf("%s %q: negative reservation (%d bytes, %d messages); use AddUsage to release", op, key, bytes, messages)
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	p := params{address: key, bytes: bytes, messages: messages, limitBytes: limit.Bytes, limitMessages: limit.Messages}
	if _, err := d.exec(ctx, d.q.quotaEnsure, p); err != nil {
		return false, classify(fmt.Sprintf("%s %q", op, key), err)
	}
	n, err := d.affected(ctx, op, d.q.quotaReserve, p)
	if err != nil {
		return false, err
	}
	return n > 0, nil
}

// SetUsage implements userdb.QuotaStore (quota recalculation only).
func (d *DB) SetUsage(ctx context.Context, address string, u userdb.Usage) error {
	const op = "sql quota set"
	key, err := quotaKey(op, address)
	if err != nil {
		return err
	}
	if u.Bytes < 0 || u.Messages < 0 {
		return fmt.Errorf("%s %q: negative usage", op, key)
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	_, err = d.exec(ctx, d.q.quotaSet, params{address: key, bytes: u.Bytes, messages: u.Messages})
	return classify(fmt.Sprintf("%s %q", op, key), err)
}
