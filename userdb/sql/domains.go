package sqldir

import (
	"context"
	gosql "database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/vmaild/vmaild/userdb"
)

// LookupDomain implements userdb.DomainSource.
func (d *DB) LookupDomain(ctx context.Context, name string) (*userdb.Domain, error) {
	const op = "sql lookup domain"
	key, err := userdb.CanonicalDomain(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", op, userdb.ErrNotFound, err)
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	row, err := d.queryRow(ctx, d.q.domain, params{domain: key})
	if err != nil {
		return nil, err
	}
	dom, err := scanDomain(row)
	if errors.Is(err, gosql.ErrNoRows) {
		return nil, fmt.Errorf("%s %q: %w", op, key, userdb.ErrNotFound)
	}
	if err != nil {
		return nil, classify(fmt.Sprintf("%s %q", op, key), err)
	}
	if dom.Name == "" {
		dom.Name = key
	}
	return dom, nil
}

func scanDomain(s rowScanner) (*userdb.Domain, error) {
	var (
		name, catchall, aliasFor gosql.NullString
		active                   gosql.NullBool
		qb, qm                   gosql.NullInt64
	)
	if err := s.Scan(&name, &active, &qb, &qm, &catchall, &aliasFor); err != nil {
		return nil, err
	}
	return &userdb.Domain{
		Name:     strings.ToLower(name.String),
		Active:   active.Valid && active.Bool,
		Quota:    userdb.Limit{Bytes: qb.Int64, Messages: qm.Int64},
		CatchAll: strings.ToLower(catchall.String),
		AliasFor: strings.ToLower(aliasFor.String),
	}, nil
}

// LookupAliases implements userdb.DomainSource. A row may hold a
// comma-separated list (PostfixAdmin's alias.goto); it is split here so
// every backend returns one address per element.
func (d *DB) LookupAliases(ctx context.Context, source string) ([]string, error) {
	const op = "sql lookup aliases"
	key, _, err := userdb.MapKey(source)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	s, err := d.prepared(ctx, d.q.aliases)
	if err != nil {
		return nil, err
	}
	rows, err := s.QueryContext(ctx, d.q.aliases.args(params{source: key, address: key})...)
	if err != nil {
		return nil, classify(fmt.Sprintf("%s %q", op, key), err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var dest gosql.NullString
		if err := rows.Scan(&dest); err != nil {
			return nil, classify(fmt.Sprintf("%s %q", op, key), err)
		}
		out = appendList(out, dest.String)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Sprintf("%s %q", op, key), err)
	}
	return out, nil
}

// appendList appends the elements of a comma-separated list, the form
// PostfixAdmin keeps alias.goto in.
func appendList(out []string, list string) []string {
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// AddDomain implements userdb.DomainAdmin. An alias domain's target must
// exist already.
func (d *DB) AddDomain(ctx context.Context, dom userdb.Domain) error {
	const op = "sql add domain"
	if d.foreignDomains {
		return fmt.Errorf("%s: %w", op, ErrForeignSchema)
	}
	name, err := userdb.CanonicalDomain(dom.Name)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	p := params{domain: name, active: dom.Active, limitBytes: dom.Quota.Bytes, limitMessages: dom.Quota.Messages}
	if dom.CatchAll != "" {
		if p.catchall, err = userdb.Canonical(dom.CatchAll); err != nil {
			return fmt.Errorf("%s %q: catch-all: %w", op, name, err)
		}
	}
	if dom.AliasFor != "" {
		if p.aliasFor, err = userdb.CanonicalDomain(dom.AliasFor); err != nil {
			return fmt.Errorf("%s %q: alias for: %w", op, name, err)
		}
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	_, err = d.exec(ctx, d.q.addDomain, p)
	if isForeignKey(err) {
		return fmt.Errorf("%s %q: alias target %q: %w", op, name, p.aliasFor, userdb.ErrNotFound)
	}
	return classify(fmt.Sprintf("%s %q", op, name), err)
}

// DeleteDomain implements userdb.DomainAdmin. It refuses with
// ErrDomainInUse while accounts or alias domains depend on the domain, so
// deleting a domain never orphans mailboxes; the domain's aliases go with
// it, and so do the sender grants for its addresses.
func (d *DB) DeleteDomain(ctx context.Context, name string) error {
	const op = "sql delete domain"
	if d.foreignDomains || d.foreignAccounts {
		return fmt.Errorf("%s: %w", op, ErrForeignSchema)
	}
	key, err := userdb.CanonicalDomain(name)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", op, userdb.ErrNotFound, err)
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	p := params{domain: key}
	return d.inTx(ctx, fmt.Sprintf("%s %q", op, key), func(tx *gosql.Tx) error {
		for _, c := range []struct {
			q    *query
			what string
		}{{d.q.countDomainAccounts, "account(s)"}, {d.q.countAliasDomains, "alias domain(s)"}} {
			var n int64
			if err := tx.QueryRowContext(ctx, c.q.sql, c.q.args(p)...).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("%w: %d %s still depend on it", ErrDomainInUse, n, c.what)
			}
		}
		if _, err := tx.ExecContext(ctx, d.q.deleteDomainAliases.sql, d.q.deleteDomainAliases.args(p)...); err != nil {
			return err
		}
		if !d.foreignSenders {
			// A domain added again later, for someone else, must not
			// inherit who could send as its addresses.
			if _, err := tx.ExecContext(ctx, d.q.deleteDomainSenders.sql, d.q.deleteDomainSenders.args(p)...); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, d.q.deleteDomain.sql, d.q.deleteDomain.args(p)...)
		if isForeignKey(err) {
			// An account was added between the count and the delete.
			return fmt.Errorf("%w: %w", ErrDomainInUse, err)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return userdb.ErrNotFound
		}
		return nil
	})
}

// ListDomains implements userdb.DomainAdmin.
func (d *DB) ListDomains(ctx context.Context) ([]userdb.Domain, error) {
	const op = "sql list domains"
	if d.foreignDomains {
		return nil, fmt.Errorf("%s: %w", op, ErrForeignSchema)
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	rows, err := d.db.QueryContext(ctx, d.q.listDomains.sql)
	if err != nil {
		return nil, classify(op, err)
	}
	defer rows.Close()
	var out []userdb.Domain
	for rows.Next() {
		dom, err := scanDomain(rows)
		if err != nil {
			return nil, classify(op, err)
		}
		out = append(out, *dom)
	}
	return out, classify(op, rows.Err())
}

// AddAlias implements userdb.DomainAdmin. The source's domain must exist;
// the destination may be anywhere.
func (d *DB) AddAlias(ctx context.Context, source, destination string) error {
	const op = "sql add alias"
	if d.foreignDomains {
		return fmt.Errorf("%s: %w", op, ErrForeignSchema)
	}
	src, domain, err := userdb.MapKey(source)
	if err != nil {
		return fmt.Errorf("%s: source: %w", op, err)
	}
	dst, err := userdb.Canonical(destination)
	if err != nil {
		return fmt.Errorf("%s %q: destination: %w", op, src, err)
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	_, err = d.exec(ctx, d.q.addAlias, params{source: src, destination: dst, domain: domain})
	if isForeignKey(err) {
		return fmt.Errorf("%s %q: domain %q: %w", op, src, domain, userdb.ErrNotFound)
	}
	return classify(fmt.Sprintf("%s %q → %q", op, src, dst), err)
}

// DeleteAlias implements userdb.DomainAdmin.
func (d *DB) DeleteAlias(ctx context.Context, source, destination string) error {
	const op = "sql delete alias"
	if d.foreignDomains {
		return fmt.Errorf("%s: %w", op, ErrForeignSchema)
	}
	src, _, err := userdb.MapKey(source)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", op, userdb.ErrNotFound, err)
	}
	q, p := d.q.deleteAliasSource, params{source: src}
	if destination != "" {
		if p.destination, err = userdb.Canonical(destination); err != nil {
			return fmt.Errorf("%s %q: %w: %w", op, src, userdb.ErrNotFound, err)
		}
		q = d.q.deleteAlias
	}
	ctx, cancel := d.opContext(ctx)
	defer cancel()
	n, err := d.affected(ctx, op, q, p)
	if err == nil && n == 0 {
		err = fmt.Errorf("%s %q → %q: %w", op, src, p.destination, userdb.ErrNotFound)
	}
	return err
}

// ListAliases implements userdb.DomainAdmin.
func (d *DB) ListAliases(ctx context.Context, domain string) ([]userdb.Alias, error) {
	if d.foreignDomains {
		return nil, fmt.Errorf("sql list aliases: %w", ErrForeignSchema)
	}
	return listByDomain(ctx, d, "sql list aliases", d.q.listAllAliases, d.q.listAliases, domain,
		func(r rowScanner) (userdb.Alias, error) {
			var a userdb.Alias
			err := r.Scan(&a.Source, &a.Destination)
			return a, err
		})
}
