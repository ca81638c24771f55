package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/ldap"
	"github.com/vmaild/vmaild/userdb/ldif"
)

func (a *app) ldifCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "ldif", Short: "Load users from LDIF files"}
	var addDomains bool
	imp := &cobra.Command{
		Use:   "import FILE",
		Short: "Load an LDIF of users into the configured account backend (idempotent)",
		Long: "With LDAP accounts every entry is added, or its attributes replaced where the\n" +
			"entry exists. With SQL accounts every entry carrying a mail attribute becomes an\n" +
			"account row (created or updated); other entries (base, ou=people) are skipped.\n" +
			"Each entry is reported; running the same file twice changes nothing.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			return a.withDirectory(cmd, func(ctx context.Context, d *directory) error {
				return a.importLDIF(ctx, cmd.OutOrStdout(), f, d, addDomains)
			})
		},
	}
	imp.Flags().BoolVar(&addDomains, "add-domains", false, "SQL accounts: add the domains of imported accounts that do not exist yet")
	cmd.AddCommand(imp)
	return cmd
}

// importReport counts what an import did.
type importReport struct{ created, updated, skipped, failed int }

func (a *app) importLDIF(ctx context.Context, out io.Writer, r io.Reader, d *directory, addDomains bool) error {
	rd := ldif.NewReader(r)
	var rep importReport
	attrs := a.importAttributes()
	for {
		e, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w (after %d created, %d updated)", err, rep.created, rep.updated)
		}
		var created bool
		if d.ldap != nil {
			created, err = d.ldap.ImportEntry(ctx, e)
		} else {
			var acct userdb.Account
			var hash string
			acct, hash, err = accountFromEntry(e, attrs)
			if errors.Is(err, errNoMail) {
				fmt.Fprintf(out, "skipped  %s (line %d): no %s attribute\n", e.DN, e.Line, attrs.Mail)
				rep.skipped++
				continue
			}
			if err == nil {
				err = ensureDomain(ctx, d, acct.Address, addDomains)
			}
			if err == nil {
				created, err = d.accounts.PutAccount(ctx, acct, hash)
			}
			if err == nil {
				err = importSenders(ctx, d, acct.Address, e.Values(attrs.SenderAddress))
			}
		}
		switch {
		case err != nil:
			fmt.Fprintf(out, "failed   %s (line %d): %v\n", e.DN, e.Line, err)
			rep.failed++
			if userdb.Temporary(err) {
				return err
			}
		case created:
			fmt.Fprintf(out, "created  %s\n", e.DN)
			rep.created++
		default:
			fmt.Fprintf(out, "updated  %s\n", e.DN)
			rep.updated++
		}
	}
	fmt.Fprintf(out, "%d created, %d updated, %d skipped, %d failed\n", rep.created, rep.updated, rep.skipped, rep.failed)
	if d.cache != nil {
		d.cache.Flush()
	}
	if rep.failed > 0 {
		return fmt.Errorf("%d entries failed", rep.failed)
	}
	return nil
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

func first(e ldif.Entry, name string) string {
	if name == "" {
		return ""
	}
	if v := e.Values(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// accountFromEntry maps an inetOrgPerson (plus vmaild's schema) to an
// account row.
func accountFromEntry(e ldif.Entry, at ldap.Attributes) (userdb.Account, string, error) {
	mail := first(e, at.Mail)
	if mail == "" {
		return userdb.Account{}, "", errNoMail
	}
	addr, err := userdb.Canonical(mail)
	if err != nil {
		return userdb.Account{}, "", err
	}
	hash := first(e, at.Password)
	if hash == "" {
		return userdb.Account{}, "", fmt.Errorf("no %s attribute", at.Password)
	}
	acct := userdb.Account{Address: addr, Name: first(e, at.Name), Active: true, Maildir: first(e, at.Maildir)}
	if v := first(e, at.Active); v != "" {
		switch strings.ToUpper(v) {
		case "TRUE":
		case "FALSE":
			acct.Active = false
		default:
			return userdb.Account{}, "", fmt.Errorf("%s: %q is not TRUE or FALSE", at.Active, v)
		}
	}
	qb, qm := first(e, at.QuotaBytes), first(e, at.QuotaMessages)
	if qb != "" || qm != "" {
		acct.Quota = &userdb.Limit{}
		for _, p := range []struct {
			name, v string
			dst     *int64
		}{{at.QuotaBytes, qb, &acct.Quota.Bytes}, {at.QuotaMessages, qm, &acct.Quota.Messages}} {
			if p.v == "" {
				continue
			}
			n, err := strconv.ParseInt(p.v, 10, 64)
			if err != nil || n < 0 {
				return userdb.Account{}, "", fmt.Errorf("%s: %q is not a non-negative integer", p.name, p.v)
			}
			*p.dst = n
		}
	}
	return acct, hash, nil
}

// importSenders turns an entry's sender addresses into sender map grants,
// so an LDIF moved from LDAP to SQL keeps what its accounts may send as.
func importSenders(ctx context.Context, d *directory, login string, addresses []string) error {
	for _, a := range addresses {
		err := d.senders.AddSender(ctx, a, login)
		if err != nil && !errors.Is(err, userdb.ErrExists) {
			return fmt.Errorf("sender address %q: %w", a, err)
		}
	}
	return nil
}

func ensureDomain(ctx context.Context, d *directory, addr string, add bool) error {
	_, domain, _ := userdb.Split(addr)
	ok, err := d.users.IsLocalDomain(ctx, domain)
	if err != nil || ok {
		return err
	}
	if !add {
		return fmt.Errorf("domain %s is not a local domain (add it with `vmaild domain add %s`, or import with --add-domains)", domain, domain)
	}
	if err := d.domains.AddDomain(ctx, userdb.Domain{Name: domain, Active: true}); err != nil && !errors.Is(err, userdb.ErrExists) {
		return err
	}
	d.cache.Flush()
	return nil
}
