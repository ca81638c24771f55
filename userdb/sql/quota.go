package sqldir

import (
	"context"
	gosql "database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

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
	ok, err := d.ReserveUsages(ctx, []userdb.Reservation{{Address: address, Bytes: bytes, Messages: messages, Limit: limit}})
	if err != nil {
		return false, err
	}
	return ok[0], nil
}

// ReserveUsages implements userdb.QuotaBatcher: ReserveUsage's two
// statements for every reservation, in one transaction. Rows are touched
// in address order, so two batches that share accounts cannot deadlock
// each other; a deadlock reported anyway (MariaDB) retries the whole
// transaction.
func (d *DB) ReserveUsages(ctx context.Context, rs []userdb.Reservation) ([]bool, error) {
	const op = "sql quota reserve"
	keys := make([]string, len(rs))
	order := make([]int, len(rs))
	for i, r := range rs {
		key, err := quotaKey(op, r.Address)
		if err != nil {
			return nil, err
		}
		if r.Bytes < 0 || r.Messages < 0 {
			return nil, fmt.Errorf("%s %q: negative reservation (%d bytes, %d messages); use AddUsage to release", op, key, r.Bytes, r.Messages)
		}
		keys[i], order[i] = key, i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(keys[a], keys[b]) })
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	ensure, err := d.prepared(ctx, d.q.quotaEnsure)
	if err != nil {
		return nil, classify(op, err)
	}
	reserve, err := d.prepared(ctx, d.q.quotaReserve)
	if err != nil {
		return nil, classify(op, err)
	}
	ok := make([]bool, len(rs))
	what := op
	if len(rs) == 1 {
		what = fmt.Sprintf("%s %q", op, keys[0])
	}
	for attempt := 1; ; attempt++ {
		err = d.inTx(ctx, what, func(tx *gosql.Tx) error {
			en, res := tx.StmtContext(ctx, ensure), tx.StmtContext(ctx, reserve)
			for _, i := range order {
				r := rs[i]
				p := params{address: keys[i], bytes: r.Bytes, messages: r.Messages, limitBytes: r.Limit.Bytes, limitMessages: r.Limit.Messages}
				if _, err := en.ExecContext(ctx, d.q.quotaEnsure.args(p)...); err != nil {
					return err
				}
				out, err := res.ExecContext(ctx, d.q.quotaReserve.args(p)...)
				if err != nil {
					return err
				}
				n, err := out.RowsAffected()
				if err != nil {
					return err
				}
				ok[i] = n > 0
			}
			return nil
		})
		if err == nil || attempt == maxStatementAttempts || !isDeadlock(err) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return ok, nil
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
