package main

import (
	"context"
	"fmt"
	"os"

	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/ldap"
	sqldir "github.com/vmaild/vmaild/userdb/sql"
)

// directory is the user directory built from the configuration, with the
// admin sides of its backends for the CLI.
type directory struct {
	users    *userdb.Users
	cache    *userdb.Cache
	sql      *sqldir.DB
	ldap     *ldap.Source // nil unless accounts come from LDAP
	accounts userdb.AccountAdmin
	domains  userdb.DomainAdmin
	senders  userdb.SenderAdmin
}

func (d *directory) Close() {
	if d.ldap != nil {
		d.ldap.Close()
	}
	if d.sql != nil {
		d.sql.Close()
	}
}

// openDirectory connects the configured backends. SQL always serves
// domains, aliases, the sender map and quota usage; accounts come from SQL
// or LDAP.
func (a *app) openDirectory(ctx context.Context) (*directory, error) {
	cfg := a.cfg
	if cfg.SQL.Driver == "sqlite" {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("data folder: %w", err)
		}
	}
	db, err := sqldir.Open(ctx, cfg.SQL)
	if err != nil {
		return nil, fmt.Errorf("sql (%s): %w", cfg.SQL.Driver, err)
	}
	if cfg.SQL.Driver == "sqlite" {
		// The embedded database is ours to create, for the admin commands
		// as for serve: `vmaild domain add` on a fresh install must not
		// fail with "no such table". A MySQL schema stays the admin's
		// `vmaild db migrate`.
		if _, err := db.Migrate(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("sql (sqlite) %s: %w", cfg.SQL.DSN, err)
		}
	}
	db.SetHashCaps(cfg.Login.Hashes)
	d := &directory{sql: db, accounts: db, domains: db, senders: db}
	var accounts userdb.AccountSource = db
	if cfg.UserDB.Accounts == "ldap" {
		src, err := ldap.New(cfg.LDAP)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("ldap: %w", err)
		}
		src.SetHashCaps(cfg.Login.Hashes)
		d.ldap, d.accounts, accounts = src, src, src
	}
	d.cache = userdb.NewCache(accounts, db, cfg.UserDB.Cache)
	d.users = &userdb.Users{
		Accounts:           d.cache.Accounts(),
		Domains:            d.cache.Domains(),
		Quotas:             db,
		Senders:            d.cache.Senders(db),
		Limits:             db,
		DefaultDomain:      cfg.UserDB.DefaultDomain,
		RecipientDelimiter: cfg.UserDB.RecipientDelimiter,
	}
	return d, nil
}
