package sqldir

import (
	"context"
	gosql "database/sql"
	"fmt"

	"github.com/vmaild/vmaild/userdb"
)

var (
	_ userdb.SenderMap   = (*DB)(nil)
	_ userdb.SenderAdmin = (*DB)(nil)
)

// SenderLogins implements userdb.SenderMap. A row may hold a
// comma-separated list, as an override on PostfixAdmin's alias.goto would
// return it; it is split here like LookupAliases splits it.
func (d *DB) SenderLogins(ctx context.Context, key string) ([]string, error) {
	const op = "sql sender logins"
	k, _, err := userdb.MapKey(key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	s, err := d.prepared(ctx, d.q.senderLogins)
	if err != nil {
		return nil, err
	}
	rows, err := s.QueryContext(ctx, d.q.senderLogins.args(params{address: k})...)
	if err != nil {
		return nil, classify(fmt.Sprintf("%s %q", op, k), err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var login gosql.NullString
		if err := rows.Scan(&login); err != nil {
			return nil, classify(fmt.Sprintf("%s %q", op, k), err)
		}
		out = appendList(out, login.String)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Sprintf("%s %q", op, k), err)
	}
	return out, nil
}

// AddSender implements userdb.SenderAdmin. Neither the address's domain nor
// the login's account needs to be in this database: the address may be
// elsewhere and the account in LDAP.
func (d *DB) AddSender(ctx context.Context, address, login string) error {
	const op = "sql add sender"
	if d.foreignSenders {
		return fmt.Errorf("%s: %w", op, ErrForeignSchema)
	}
	key, domain, err := userdb.MapKey(address)
	if err != nil {
		return fmt.Errorf("%s: address: %w", op, err)
	}
	l, err := userdb.Canonical(login)
	if err != nil {
		return fmt.Errorf("%s %q: login: %w", op, key, err)
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	_, err = d.exec(ctx, d.q.addSender, params{address: key, login: l, domain: domain})
	return classify(fmt.Sprintf("%s %q → %q", op, key, l), err)
}

// DeleteSender implements userdb.SenderAdmin.
func (d *DB) DeleteSender(ctx context.Context, address, login string) error {
	const op = "sql delete sender"
	if d.foreignSenders {
		return fmt.Errorf("%s: %w", op, ErrForeignSchema)
	}
	key, _, err := userdb.MapKey(address)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", op, userdb.ErrNotFound, err)
	}
	q, p := d.q.deleteSenderAddress, params{address: key}
	if login != "" {
		if p.login, err = userdb.Canonical(login); err != nil {
			return fmt.Errorf("%s %q: %w: %w", op, key, userdb.ErrNotFound, err)
		}
		q = d.q.deleteSender
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	n, err := d.affected(ctx, op, q, p)
	if err == nil && n == 0 {
		err = fmt.Errorf("%s %q → %q: %w", op, key, p.login, userdb.ErrNotFound)
	}
	return err
}

// ListSenders implements userdb.SenderAdmin.
func (d *DB) ListSenders(ctx context.Context, domain string) ([]userdb.SenderGrant, error) {
	if d.foreignSenders {
		return nil, fmt.Errorf("sql list senders: %w", ErrForeignSchema)
	}
	return listByDomain(ctx, d, "sql list senders", d.q.listAllSenders, d.q.listSenders, domain,
		func(r rowScanner) (userdb.SenderGrant, error) {
			var g userdb.SenderGrant
			err := r.Scan(&g.Address, &g.Login)
			return g, err
		})
}
