package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/ldap"
	"github.com/vmaild/vmaild/userdb/ldif"
)

func (a *app) ldifCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "ldif", Short: "Load users from LDIF files"}
	var opts importOptions
	imp := &cobra.Command{
		Use:   "import FILE",
		Short: "Load an LDIF of users into the configured account backend (idempotent)",
		Long: "With LDAP accounts every entry is added, or the attributes that differ replaced\n" +
			"where the entry exists. With SQL accounts every entry carrying a mail attribute\n" +
			"becomes an account row (created or updated); other entries (base, ou=people) are\n" +
			"skipped. Each entry is reported; running the same file twice reports\n" +
			"\"0 created, 0 updated\".\n\n" +
			"Foreign schemas are read as well: iRedMail's mailQuota (bytes), accountStatus,\n" +
			"mailAlternateAddress and shadowAddress (aliases to the account),\n" +
			"mailForwardingAddress (aliases from the account; its own address among them\n" +
			"keeps a copy); mailboxQuota and Dovecot's/PostfixAdmin's quota (bytes),\n" +
			"quotaRule (a Dovecot quota_rule such as *:storage=1G), qmail-ldap's\n" +
			"mailQuotaSize/mailQuotaCount. --map ATTR=FIELD maps others (fields: " + joinFields() + ").\n" +
			"In LDAP mode foreign quota and status move to vmaild's attributes, addresses to\n" +
			"SQL aliases, and attributes the directory's schema lacks are dropped, with a note.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			return a.withDirectory(cmd, func(ctx context.Context, d *directory) error {
				return a.importLDIF(ctx, cmd.OutOrStdout(), f, d, opts)
			})
		},
	}
	imp.Flags().BoolVar(&opts.addDomains, "add-domains", false, "add the domains of imported accounts and aliases that are not local yet")
	imp.Flags().BoolVar(&opts.dryRun, "dry-run", false, "report what the import would change and write nothing")
	imp.Flags().StringArrayVar(&opts.maps, "map", nil, "ATTR=FIELD: read attribute ATTR as FIELD (repeatable; field ignore drops it)")
	cmd.AddCommand(imp)
	return cmd
}

type importOptions struct {
	addDomains, dryRun bool
	maps               []string
}

// importReport counts what an import did.
type importReport struct{ created, updated, unchanged, skipped, failed, warnings int }

// importer carries one import's state across entries.
type importer struct {
	d      *directory
	out    io.Writer
	opts   importOptions
	m      importMapping
	schema ldap.Schema
	// domains already checked (or, in a dry run, already reported as
	// to be added): domain → local.
	domains map[string]bool
}

func (a *app) importLDIF(ctx context.Context, out io.Writer, r io.Reader, d *directory, opts importOptions) error {
	m, err := newImportMapping(a.importAttributes(), opts.maps)
	if err != nil {
		return err
	}
	im := &importer{d: d, out: out, opts: opts, m: m, domains: map[string]bool{}}
	if d.ldap != nil {
		if im.schema, err = d.ldap.ReadSchema(ctx); err != nil {
			return fmt.Errorf("ldif import: %w", err)
		}
	}
	rd := ldif.NewReader(r)
	var rep importReport
	for {
		e, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w (after %d created, %d updated)", err, rep.created, rep.updated)
		}
		res, warned, err := im.entry(ctx, e)
		if warned {
			rep.warnings++
		}
		switch {
		case errors.Is(err, errNoMail) && d.ldap == nil:
			fmt.Fprintf(out, "skipped  %s (line %d): no %s attribute\n", e.DN, e.Line, m.native.Mail)
			rep.skipped++
		case err != nil:
			fmt.Fprintf(out, "failed   %s (line %d): %v\n", e.DN, e.Line, err)
			rep.failed++
			if userdb.Temporary(err) {
				return err
			}
		case res == ldap.Created:
			fmt.Fprintf(out, "created  %s\n", e.DN)
			rep.created++
		case res == ldap.Updated:
			fmt.Fprintf(out, "updated  %s\n", e.DN)
			rep.updated++
		default:
			rep.unchanged++
		}
	}
	fmt.Fprintf(out, "%d created, %d updated, %d unchanged, %d skipped, %d failed", rep.created, rep.updated, rep.unchanged, rep.skipped, rep.failed)
	if rep.warnings > 0 {
		fmt.Fprintf(out, ", %d warnings", rep.warnings)
	}
	if opts.dryRun {
		fmt.Fprint(out, " (dry run: nothing was written)")
	}
	fmt.Fprintln(out)
	if d.cache != nil && !opts.dryRun {
		d.cache.Flush()
	}
	if rep.failed > 0 {
		return fmt.Errorf("%d entries failed", rep.failed)
	}
	return nil
}

// entry imports one entry: the account (SQL row or LDAP entry), then its
// aliases and sender grants in SQL. The result is the strongest change
// any of them made.
func (im *importer) entry(ctx context.Context, e ldif.Entry) (res ldap.ImportResult, warned bool, err error) {
	rec, err := im.m.translate(e)
	if im.d.ldap != nil {
		if err != nil && !errors.Is(err, errNoMail) {
			return 0, false, err
		}
		hasMail := err == nil
		if hasMail {
			// The account lands in LDAP whatever SQL knows of its
			// domain; a domain that is not local there still relays
			// its mail away, so say so.
			if warned, err = im.domainOrWarn(ctx, e, rec.acct.Address); err != nil {
				return 0, warned, err
			}
		}
		entry, notes := im.m.ldapEntry(e, rec, im.schema, im.d.ldap.AccountObjectClass())
		for _, n := range notes {
			fmt.Fprintf(im.out, "note     %s: %s\n", e.DN, n)
		}
		if res, err = im.d.ldap.ImportEntry(ctx, entry, im.opts.dryRun); err != nil || !hasMail {
			return res, warned, err
		}
		if warned && len(rec.aliases)+len(rec.forwards) > 0 {
			fmt.Fprintf(im.out, "note     %s: its aliases wait for the domain to be local (import again then)\n", e.DN)
			return res, warned, nil
		}
	} else {
		if err != nil {
			return 0, false, err
		}
		if rec.hash == "" {
			return 0, false, fmt.Errorf("no %s attribute", im.m.native.Password)
		}
		if err := im.ensureDomain(ctx, rec.acct.Address); err != nil {
			return 0, false, err
		}
		if res, err = im.putAccount(ctx, rec); err != nil {
			return res, false, err
		}
		for _, s := range rec.senders {
			r, err := im.grantSender(ctx, s, rec.acct.Address)
			if err != nil {
				return res, false, err
			}
			res = stronger(res, r)
		}
	}
	for _, alias := range rec.aliases {
		r, err := im.alias(ctx, alias, rec.acct.Address)
		if err != nil {
			return res, warned, err
		}
		res = stronger(res, r)
	}
	for _, dest := range rec.forwards {
		r, err := im.alias(ctx, rec.acct.Address, dest)
		if err != nil {
			return res, warned, err
		}
		res = stronger(res, r)
	}
	return res, warned, nil
}

// stronger: an entry is created if its account was, else updated if
// anything about it changed.
func stronger(a, b ldap.ImportResult) ldap.ImportResult {
	if a == ldap.Unchanged && b != ldap.Unchanged {
		return ldap.Updated
	}
	return a
}

// putAccount writes an account row unless the stored one is identical.
func (im *importer) putAccount(ctx context.Context, rec importRecord) (ldap.ImportResult, error) {
	old, hash, err := im.d.sql.StoredAccount(ctx, rec.acct.Address)
	switch {
	case errors.Is(err, userdb.ErrNotFound):
		err = nil
		if !im.opts.dryRun {
			_, err = im.d.accounts.PutAccount(ctx, rec.acct, rec.hash)
		}
		return ldap.Created, err
	case err != nil:
		return 0, err
	case hash == rec.hash && sameAccount(*old, rec.acct):
		return ldap.Unchanged, nil
	}
	if !im.opts.dryRun {
		_, err = im.d.accounts.PutAccount(ctx, rec.acct, rec.hash)
	}
	return ldap.Updated, err
}

func sameAccount(a, b userdb.Account) bool {
	if (a.Quota == nil) != (b.Quota == nil) || (a.Quota != nil && *a.Quota != *b.Quota) {
		return false
	}
	return a.Address == b.Address && a.Name == b.Name && a.Active == b.Active && a.Maildir == b.Maildir
}

// alias adds source → destination unless it is there; the source's
// domain must be local (or added with --add-domains).
func (im *importer) alias(ctx context.Context, source, destination string) (ldap.ImportResult, error) {
	src, err := userdb.Canonical(source)
	if err != nil {
		return 0, fmt.Errorf("alias %q: %w", source, err)
	}
	dst, err := userdb.Canonical(destination)
	if err != nil {
		return 0, fmt.Errorf("alias %s → %q: %w", src, destination, err)
	}
	have, err := im.d.sql.LookupAliases(ctx, src)
	if err != nil {
		return 0, err
	}
	if slices.Contains(have, dst) {
		return ldap.Unchanged, nil
	}
	if err := im.ensureDomain(ctx, src); err != nil {
		return 0, fmt.Errorf("alias %s: %w", src, err)
	}
	if im.opts.dryRun {
		return ldap.Updated, nil
	}
	if err := im.d.domains.AddAlias(ctx, src, dst); err != nil && !errors.Is(err, userdb.ErrExists) {
		return 0, fmt.Errorf("alias %s → %s: %w", src, dst, err)
	}
	return ldap.Updated, nil
}

// grantSender turns one of an entry's sender addresses into a sender map
// grant, so an LDIF moved from LDAP to SQL keeps what its accounts may
// send as.
func (im *importer) grantSender(ctx context.Context, address, login string) (ldap.ImportResult, error) {
	key, _, err := userdb.MapKey(address)
	if err != nil {
		return 0, fmt.Errorf("sender address %q: %w", address, err)
	}
	logins, err := im.d.sql.SenderLogins(ctx, key)
	if err != nil {
		return 0, err
	}
	if slices.Contains(logins, login) {
		return ldap.Unchanged, nil
	}
	if im.opts.dryRun {
		return ldap.Updated, nil
	}
	if err := im.d.senders.AddSender(ctx, address, login); err != nil && !errors.Is(err, userdb.ErrExists) {
		return 0, fmt.Errorf("sender address %q: %w", address, err)
	}
	return ldap.Updated, nil
}

// importAttributes: the configured LDAP attribute names, else vmaild's
// schema names, so an LDIF written for the LDAP backend imports into SQL.
func (a *app) importAttributes() ldap.Attributes {
	at := ldap.SchemaAttributes()
	c := a.cfg.LDAP.Attributes
	for _, p := range []struct {
		dst *string
		src string
	}{
		{&at.Mail, c.Mail}, {&at.Password, c.Password}, {&at.Name, c.Name},
		{&at.QuotaBytes, c.QuotaBytes}, {&at.QuotaMessages, c.QuotaMessages},
		{&at.Active, c.Active}, {&at.Maildir, c.Maildir}, {&at.SenderAddress, c.SenderAddress},
	} {
		if p.src != "" {
			*p.dst = p.src
		}
	}
	return at
}

var errNoMail = errors.New("no mail attribute")

// ensureDomain makes sure an address's domain is local: checked once per
// import, added with --add-domains (only reported in a dry run), else an
// error naming both ways out.
func (im *importer) ensureDomain(ctx context.Context, addr string) error {
	_, domain, _ := userdb.Split(addr)
	if local, seen := im.domains[domain]; seen {
		if local {
			return nil
		}
		return errNotLocal(domain)
	}
	ok, err := im.d.users.IsLocalDomain(ctx, domain)
	if err != nil {
		return err
	}
	if !ok && im.opts.addDomains {
		if !im.opts.dryRun {
			if err := im.d.domains.AddDomain(ctx, userdb.Domain{Name: domain, Active: true}); err != nil && !errors.Is(err, userdb.ErrExists) {
				return err
			}
			im.d.cache.Flush()
		}
		fmt.Fprintf(im.out, "domain   %s added\n", domain)
		ok = true
	}
	im.domains[domain] = ok
	if !ok {
		return errNotLocal(domain)
	}
	return nil
}

func errNotLocal(domain string) error {
	return fmt.Errorf("domain %s is not a local domain (add it with `vmaild domain add %s`, or import with --add-domains)", domain, domain)
}

// domainOrWarn is ensureDomain for LDAP accounts: the account is written
// either way, with a warning when its domain stays non-local, since its
// user could log in but mail to it would be relayed away.
func (im *importer) domainOrWarn(ctx context.Context, e ldif.Entry, addr string) (bool, error) {
	err := im.ensureDomain(ctx, addr)
	if err == nil {
		return false, nil
	}
	if userdb.Temporary(err) {
		return false, err
	}
	fmt.Fprintf(im.out, "warning  %s: %v; until then mail to %s is relayed away instead of delivered\n", e.DN, err, addr)
	return true, nil
}
