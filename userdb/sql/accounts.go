package sqldir

import (
	"context"
	gosql "database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/password"
)

// canonicalKey canonicalises an address before it goes near a query: the
// callers already did, but a key that is not a plain address can only be
// a mistake or an attack, and must never match.
func canonicalKey(op, address string) (string, error) {
	a, err := userdb.Canonical(address)
	if err != nil {
		return "", fmt.Errorf("%s: %w: %w", op, userdb.ErrNotFound, err)
	}
	return a, nil
}

type rowScanner interface{ Scan(dest ...any) error }

// scanAccount reads the account columns (address, name, active,
// quota_bytes, quota_messages, maildir) and any extra columns after them.
func scanAccount(s rowScanner, extra ...any) (*userdb.Account, error) {
	var (
		addr, name, maildir gosql.NullString
		active              gosql.NullBool
		qb, qm              gosql.NullInt64
	)
	if err := s.Scan(append([]any{&addr, &name, &active, &qb, &qm, &maildir}, extra...)...); err != nil {
		return nil, err
	}
	a := &userdb.Account{
		Address: strings.ToLower(addr.String),
		Name:    name.String,
		Active:  active.Valid && active.Bool,
		Maildir: maildir.String,
	}
	if qb.Valid || qm.Valid {
		a.Quota = &userdb.Limit{Bytes: qb.Int64, Messages: qm.Int64}
	}
	return a, nil
}

// LookupAccount implements userdb.AccountSource.
func (d *DB) LookupAccount(ctx context.Context, address string) (*userdb.Account, error) {
	const op = "sql lookup account"
	key, err := canonicalKey(op, address)
	if err != nil {
		return nil, err
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	row, err := d.queryRow(ctx, d.q.account, params{address: key})
	if err != nil {
		return nil, err
	}
	a, err := scanAccount(row)
	if errors.Is(err, gosql.ErrNoRows) {
		return nil, fmt.Errorf("%s %q: %w", op, key, userdb.ErrNotFound)
	}
	if err != nil {
		return nil, classify(fmt.Sprintf("%s %q", op, key), err)
	}
	if a.Address == "" {
		a.Address = key
	}
	return a, nil
}

// SetHashCaps bounds the cost parameters of the stored hashes Authenticate
// verifies (password.Caps; the zero value is the defaults). Call it before
// serving.
func (d *DB) SetHashCaps(c password.Caps) { d.hashCaps = c }

// Authenticate implements userdb.AccountSource. The password is compared
// with the stored {SCHEME} hash in Go, never sent to the database.
func (d *DB) Authenticate(ctx context.Context, address, plain string) (*userdb.Account, error) {
	const op = "sql authenticate"
	key, err := canonicalKey(op, address)
	if err != nil {
		return nil, err
	}
	// The timeout bounds the query only: the verification below may wait
	// for the login service's slot, a wait the caller's context bounds.
	qctx, cancel := d.opContext(ctx)
	defer cancel()
	row, err := d.queryRow(qctx, d.q.password, params{address: key})
	if err != nil {
		return nil, err
	}
	var hash gosql.NullString
	a, err := scanAccount(row, &hash)
	if errors.Is(err, gosql.ErrNoRows) {
		return nil, fmt.Errorf("%s %q: %w", op, key, userdb.ErrNotFound)
	}
	if err != nil {
		return nil, classify(fmt.Sprintf("%s %q", op, key), err)
	}
	// An empty password never logs in, even against an empty stored one.
	if plain == "" || hash.String == "" {
		return nil, fmt.Errorf("%s %q: %w", op, key, userdb.ErrBadCredentials)
	}
	ok, err := d.hashCaps.Verify(ctx, hash.String, plain)
	if errors.Is(err, password.ErrNotAdmitted) {
		// The login service had no room to verify: not the user's fault.
		return nil, userdb.Unavailable(fmt.Sprintf("%s %q", op, key), err)
	}
	if err != nil {
		// A hash we cannot read is a "no" for the user and a finding for
		// the admin; the cause names the scheme problem, not the hash.
		return nil, fmt.Errorf("%s %q: %w: stored hash: %w", op, key, userdb.ErrBadCredentials, err)
	}
	if !ok {
		return nil, fmt.Errorf("%s %q: %w", op, key, userdb.ErrBadCredentials)
	}
	if a.Address == "" {
		a.Address = key
	}
	return a, nil
}

// StoredAccount returns an account with its stored password hash, so an
// import can tell an identical row from a changed one. ErrNotFound when
// there is none.
func (d *DB) StoredAccount(ctx context.Context, address string) (*userdb.Account, string, error) {
	const op = "sql stored account"
	key, err := canonicalKey(op, address)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	row, err := d.queryRow(ctx, d.q.password, params{address: key})
	if err != nil {
		return nil, "", err
	}
	var hash gosql.NullString
	a, err := scanAccount(row, &hash)
	if errors.Is(err, gosql.ErrNoRows) {
		return nil, "", fmt.Errorf("%s %q: %w", op, key, userdb.ErrNotFound)
	}
	if err != nil {
		return nil, "", classify(fmt.Sprintf("%s %q", op, key), err)
	}
	if a.Address == "" {
		a.Address = key
	}
	return a, hash.String, nil
}

// accountParams validates an account for writing.
func (d *DB) accountParams(op string, a userdb.Account, hash string) (params, error) {
	if d.foreignAccounts {
		return params{}, fmt.Errorf("%s: %w", op, ErrForeignSchema)
	}
	local, domain, err := userdb.Split(a.Address)
	if err != nil {
		return params{}, fmt.Errorf("%s: %w", op, err)
	}
	for _, f := range []struct {
		field, value string
		max          int
	}{{"name", a.Name, maxName}, {"maildir", a.Maildir, maxMaildir}, {"password hash", hash, maxHash}} {
		if err := checkText(f.field, f.value, f.max); err != nil {
			return params{}, fmt.Errorf("%s %q: %w", op, local+"@"+domain, err)
		}
	}
	p := params{
		address:  local + "@" + domain,
		domain:   domain,
		password: hash,
		name:     a.Name,
		active:   a.Active,
		maildir:  a.Maildir,
	}
	if a.Quota != nil {
		b, m := a.Quota.Bytes, a.Quota.Messages
		p.quotaBytes, p.quotaMessages = &b, &m
	}
	return p, nil
}

// Column sizes of schema/mysql; checked here so both engines refuse the
// same input instead of one truncating or storing what the other rejects.
const (
	maxName    = 255
	maxMaildir = 1024
	maxHash    = 512
)

func checkText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s longer than %d bytes", userdb.ErrInvalid, field, max)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: NUL in %s", userdb.ErrInvalid, field)
	}
	return nil
}

// AddAccount implements userdb.AccountAdmin. The account's domain must
// exist (ErrNotFound otherwise).
func (d *DB) AddAccount(ctx context.Context, a userdb.Account, passwordHash string) error {
	p, err := d.accountParams("sql add account", a, passwordHash)
	if err != nil {
		return err
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	return d.insertAccount(ctx, p)
}

func (d *DB) insertAccount(ctx context.Context, p params) error {
	op := fmt.Sprintf("sql add account %q", p.address)
	_, err := d.exec(ctx, d.q.addAccount, p)
	if isForeignKey(err) {
		return fmt.Errorf("%s: domain %q: %w", op, p.domain, userdb.ErrNotFound)
	}
	return classify(op, err)
}

// PutAccount implements userdb.AccountAdmin: update when the address
// exists, insert otherwise. An empty passwordHash keeps the stored hash.
func (d *DB) PutAccount(ctx context.Context, a userdb.Account, passwordHash string) (bool, error) {
	p, err := d.accountParams("sql put account", a, passwordHash)
	if err != nil {
		return false, err
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	// Update first, insert when nothing matched; an insert that loses a
	// race to a concurrent one falls back to the update.
	for attempt := 0; attempt < 2; attempt++ {
		n, err := d.affected(ctx, "sql put account", d.q.updateAccount, p)
		if err != nil || n > 0 {
			return false, err
		}
		err = d.insertAccount(ctx, p)
		if !errors.Is(err, userdb.ErrExists) {
			return err == nil, err
		}
	}
	return false, fmt.Errorf("sql put account %q: concurrent changes, try again: %w", p.address, userdb.ErrUnavailable)
}

// affected runs an update and returns the number of rows it matched (the
// mysql connection reports found rows, like SQLite).
func (d *DB) affected(ctx context.Context, op string, q *query, p params) (int64, error) {
	res, err := d.exec(ctx, q, p)
	if err != nil {
		return 0, classify(fmt.Sprintf("%s %q", op, p.address), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, classify(fmt.Sprintf("%s %q", op, p.address), err)
	}
	return n, nil
}

// DeleteAccount implements userdb.AccountAdmin; the account's quota usage
// and its sender grants go with it.
func (d *DB) DeleteAccount(ctx context.Context, address string) error {
	const op = "sql delete account"
	if d.foreignAccounts {
		return fmt.Errorf("%s: %w", op, ErrForeignSchema)
	}
	key, err := canonicalKey(op, address)
	if err != nil {
		return err
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	return d.inTx(ctx, op, func(tx *gosql.Tx) error {
		res, err := tx.ExecContext(ctx, d.q.deleteAccount.sql, d.q.deleteAccount.args(params{address: key})...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("%q: %w", key, userdb.ErrNotFound)
		}
		if _, err = tx.ExecContext(ctx, d.q.deleteUsage.sql, d.q.deleteUsage.args(params{address: key})...); err != nil {
			return err
		}
		if d.foreignSenders {
			return nil
		}
		// An account created again later under the same address, for
		// someone else, must not inherit what this one could send as.
		_, err = tx.ExecContext(ctx, d.q.deleteLoginSenders.sql, d.q.deleteLoginSenders.args(params{login: key})...)
		return err
	})
}

// inTx runs fn in a transaction and classifies its error once.
func (d *DB) inTx(ctx context.Context, op string, fn func(tx *gosql.Tx) error) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return classify(op+": begin", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		if errors.Is(err, userdb.ErrNotFound) || errors.Is(err, ErrDomainInUse) {
			return fmt.Errorf("%s: %w", op, err)
		}
		return classify(op, err)
	}
	return classify(op+": commit", tx.Commit())
}

// SetPassword implements userdb.AccountAdmin.
func (d *DB) SetPassword(ctx context.Context, address, passwordHash string) error {
	const op = "sql set password"
	if d.foreignAccounts {
		return fmt.Errorf("%s: %w", op, ErrForeignSchema)
	}
	key, err := canonicalKey(op, address)
	if err != nil {
		return err
	}
	if passwordHash == "" {
		return fmt.Errorf("%s %q: %w: empty password hash", op, key, userdb.ErrInvalid)
	}
	if err := checkText("password hash", passwordHash, maxHash); err != nil {
		return fmt.Errorf("%s %q: %w", op, key, err)
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	n, err := d.affected(ctx, op, d.q.setPassword, params{address: key, password: passwordHash})
	if err == nil && n == 0 {
		err = fmt.Errorf("%s %q: %w", op, key, userdb.ErrNotFound)
	}
	return err
}

// SetAccountQuota implements userdb.AccountAdmin; nil returns the account
// to its domain's default.
func (d *DB) SetAccountQuota(ctx context.Context, address string, limit *userdb.Limit) error {
	const op = "sql set account quota"
	if d.foreignAccounts {
		return fmt.Errorf("%s: %w", op, ErrForeignSchema)
	}
	key, err := canonicalKey(op, address)
	if err != nil {
		return err
	}
	p := params{address: key}
	if limit != nil {
		b, m := limit.Bytes, limit.Messages
		p.quotaBytes, p.quotaMessages = &b, &m
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	n, err := d.affected(ctx, op, d.q.setAccountQuota, p)
	if err == nil && n == 0 {
		err = fmt.Errorf("%s %q: %w", op, key, userdb.ErrNotFound)
	}
	return err
}

// ListAccounts implements userdb.AccountAdmin.
func (d *DB) ListAccounts(ctx context.Context, domain string) ([]userdb.Account, error) {
	if d.foreignAccounts {
		return nil, fmt.Errorf("sql list accounts: %w", ErrForeignSchema)
	}
	return listByDomain(ctx, d, "sql list accounts", d.q.listAllAccounts, d.q.listAccounts, domain,
		func(r rowScanner) (userdb.Account, error) {
			a, err := scanAccount(r)
			if err != nil {
				return userdb.Account{}, err
			}
			return *a, nil
		})
}

// listByDomain runs the "all" query, or the per-domain one when domain is
// set, and scans every row.
func listByDomain[T any](ctx context.Context, d *DB, op string, all, byDomain *query, domain string, scan func(rowScanner) (T, error)) ([]T, error) {
	q, p := all, params{}
	if domain != "" {
		dom, err := userdb.CanonicalDomain(domain)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		q, p = byDomain, params{domain: dom}
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	rows, err := d.db.QueryContext(ctx, q.sql, q.args(p)...)
	if err != nil {
		return nil, classify(op, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, classify(op, err)
		}
		out = append(out, v)
	}
	return out, classify(op, rows.Err())
}
