package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/password"
)

// withDirectory runs fn with the configured directory open.
func (a *app) withDirectory(cmd *cobra.Command, fn func(ctx context.Context, d *directory) error) error {
	ctx := cmd.Context()
	d, err := a.openDirectory(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(ctx, d)
}

// domainArg is the optional DOMAIN argument of the list commands; "" lists
// every domain.
func domainArg(args []string) (string, error) {
	if len(args) == 0 {
		return "", nil
	}
	return userdb.CanonicalDomain(args[0])
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func onOff(b bool) string {
	if b {
		return "active"
	}
	return "disabled"
}

func formatLimit(l *userdb.Limit) string {
	if l == nil {
		return "domain default"
	}
	if l.Unlimited() {
		return "unlimited"
	}
	var parts []string
	if l.Bytes > 0 {
		parts = append(parts, formatByteSize(l.Bytes))
	}
	if l.Messages > 0 {
		parts = append(parts, strconv.FormatInt(l.Messages, 10)+" messages")
	}
	return strings.Join(parts, ", ")
}

// readPassword takes a password from standard input (--password-stdin) or
// from a prompt without echo; never from the command line, where other
// users see it in the process list.
func readPassword(cmd *cobra.Command, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("empty password on standard input")
		}
		return pw, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", errors.New("no terminal to prompt for a password: use --password-stdin")
	}
	fmt.Fprint(cmd.ErrOrStderr(), "Password: ")
	pw1, err := term.ReadPassword(fd)
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", err
	}
	fmt.Fprint(cmd.ErrOrStderr(), "Again: ")
	pw2, err := term.ReadPassword(fd)
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", err
	}
	if string(pw1) != string(pw2) {
		return "", errors.New("the passwords differ")
	}
	if len(pw1) == 0 {
		return "", errors.New("empty password")
	}
	return string(pw1), nil
}

func (a *app) hashPasswordCommand() *cobra.Command {
	var stdin bool
	var scheme string
	cmd := &cobra.Command{
		Use:   "hash-password",
		Short: "Print a password hash in the configured scheme (for LDAP userPassword or SQL)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(cmd, stdin)
			if err != nil {
				return err
			}
			if scheme == "" {
				scheme = a.cfg.UserDB.PasswordScheme
			}
			h, err := password.Hash(scheme, pw)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), h)
			return nil
		},
	}
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	cmd.Flags().StringVar(&scheme, "scheme", "", "hash scheme (default: userdb.password_scheme); one of "+strings.Join(password.Schemes(), ", "))
	return cmd
}

func (a *app) domainCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "domain", Short: "Add, delete and list mail domains"}
	var quota, catchAll, aliasFor string
	var disabled bool
	add := &cobra.Command{
		Use:   "add DOMAIN",
		Short: "Add a domain",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := userdb.CanonicalDomain(args[0])
			if err != nil {
				return badArg(cmd, err)
			}
			d := userdb.Domain{Name: name, Active: !disabled, AliasFor: aliasFor}
			if quota != "" {
				if d.Quota.Bytes, err = parseByteSize(quota); err != nil {
					return badArg(cmd, fmt.Errorf("--quota: %w", err))
				}
			}
			if catchAll != "" {
				if d.CatchAll, err = userdb.Canonical(catchAll); err != nil {
					return badArg(cmd, fmt.Errorf("--catch-all: %w", err))
				}
			}
			if aliasFor != "" {
				if d.AliasFor, err = userdb.CanonicalDomain(aliasFor); err != nil {
					return badArg(cmd, fmt.Errorf("--alias-for: %w", err))
				}
			}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				if err := dir.domains.AddDomain(ctx, d); err != nil {
					return explain(err, "domain "+name, "domain list")
				}
				fmt.Fprintf(cmd.OutOrStdout(), "domain %s added\n", name)
				return nil
			})
		},
	}
	add.Flags().StringVar(&quota, "quota", "", "default quota for its accounts (e.g. 1G; 0 = unlimited)")
	add.Flags().StringVar(&catchAll, "catch-all", "", "address receiving mail for unknown users")
	add.Flags().StringVar(&aliasFor, "alias-for", "", "make this an alias of another local domain")
	add.Flags().BoolVar(&disabled, "disabled", false, "add the domain disabled")
	del := &cobra.Command{
		Use:   "del DOMAIN",
		Short: "Delete a domain (it must have no accounts left)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := userdb.CanonicalDomain(args[0])
			if err != nil {
				return badArg(cmd, err)
			}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				if err := dir.domains.DeleteDomain(ctx, name); err != nil {
					return explain(err, "domain "+name, "domain list")
				}
				fmt.Fprintf(cmd.OutOrStdout(), "domain %s deleted\n", name)
				return nil
			})
		},
	}
	var domainsJSON *bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List domains",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				ds, err := dir.domains.ListDomains(ctx)
				if err != nil {
					return err
				}
				if *domainsJSON {
					rows := make([]domainJSON, 0, len(ds))
					for _, d := range ds {
						rows = append(rows, toDomainJSON(d))
					}
					return printJSON(cmd.OutOrStdout(), rows)
				}
				w := table(cmd.OutOrStdout())
				fmt.Fprintln(w, "DOMAIN\tSTATE\tDEFAULT QUOTA\tCATCH-ALL\tALIAS FOR")
				for _, d := range ds {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", d.Name, onOff(d.Active), formatLimit(&d.Quota), d.CatchAll, d.AliasFor)
				}
				return w.Flush()
			})
		},
	}
	domainsJSON = jsonFlag(list)
	cmd.AddCommand(add, del, list)
	return cmd
}

func (a *app) userCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Add, delete, list and show accounts; set passwords"}
	var stdin, disabled bool
	var name, quota string
	add := &cobra.Command{
		Use:   "add ADDRESS",
		Short: "Add an account (password from a prompt or --password-stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := userdb.Canonical(args[0])
			if err != nil {
				return badArg(cmd, err)
			}
			acct := userdb.Account{Address: addr, Name: name, Active: !disabled}
			if quota != "" {
				n, err := parseByteSize(quota)
				if err != nil {
					return badArg(cmd, fmt.Errorf("--quota: %w", err))
				}
				acct.Quota = &userdb.Limit{Bytes: n}
			}
			pw, err := readPassword(cmd, stdin)
			if err != nil {
				return err
			}
			hash, err := password.Hash(a.cfg.UserDB.PasswordScheme, pw)
			if err != nil {
				return err
			}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				if err := requireLocalDomain(ctx, dir, addr); err != nil {
					return err
				}
				if err := dir.accounts.AddAccount(ctx, acct, hash); err != nil {
					return explain(err, "user "+addr, "user list")
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %s added\n", addr)
				return nil
			})
		},
	}
	add.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	add.Flags().StringVar(&name, "name", "", "display name")
	add.Flags().StringVar(&quota, "quota", "", "quota (e.g. 500M; default: the domain's)")
	add.Flags().BoolVar(&disabled, "disabled", false, "add the account disabled")

	del := &cobra.Command{
		Use:   "del ADDRESS",
		Short: "Delete an account (its mail stays on disk)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := userdb.Canonical(args[0])
			if err != nil {
				return badArg(cmd, err)
			}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				if err := dir.accounts.DeleteAccount(ctx, addr); err != nil {
					return explain(err, "user "+addr, "user list")
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %s deleted\n", addr)
				if dir.ldap != nil {
					// SQL accounts take their sender grants with them;
					// an LDAP account's grants in the SQL map must go
					// too, or a later account of the same name would
					// inherit them.
					return dropSenderGrants(ctx, cmd.OutOrStdout(), dir.senders, addr)
				}
				return nil
			})
		},
	}
	var pwStdin bool
	passwd := &cobra.Command{
		Use:   "passwd ADDRESS",
		Short: "Set an account's password",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := userdb.Canonical(args[0])
			if err != nil {
				return badArg(cmd, err)
			}
			pw, err := readPassword(cmd, pwStdin)
			if err != nil {
				return err
			}
			hash, err := password.Hash(a.cfg.UserDB.PasswordScheme, pw)
			if err != nil {
				return err
			}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				if err := dir.accounts.SetPassword(ctx, addr, hash); err != nil {
					return explain(err, "user "+addr, "user list")
				}
				fmt.Fprintf(cmd.OutOrStdout(), "password of %s changed\n", addr)
				return nil
			})
		},
	}
	passwd.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from standard input")
	var usersJSON, showJSON *bool
	list := &cobra.Command{
		Use:   "list [DOMAIN]",
		Short: "List accounts",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			domain, err := domainArg(args)
			if err != nil {
				return err
			}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				accts, err := dir.accounts.ListAccounts(ctx, domain)
				if err != nil {
					return err
				}
				if *usersJSON {
					rows := make([]accountJSON, 0, len(accts))
					for _, ac := range accts {
						rows = append(rows, toAccountJSON(ac))
					}
					return printJSON(cmd.OutOrStdout(), rows)
				}
				w := table(cmd.OutOrStdout())
				fmt.Fprintln(w, "ADDRESS\tSTATE\tQUOTA\tNAME")
				for _, ac := range accts {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", ac.Address, onOff(ac.Active), formatLimit(ac.Quota), ac.Name)
				}
				return w.Flush()
			})
		},
	}
	show := &cobra.Command{
		Use:   "show ADDRESS",
		Short: "Show an account, its effective quota and usage",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				acct, err := dir.users.Account(ctx, args[0])
				if err != nil {
					return explain(err, "user "+args[0], "user list")
				}
				limit, err := dir.users.QuotaLimit(ctx, acct.Address)
				if err != nil {
					return err
				}
				usage, err := dir.users.Quotas.Usage(ctx, acct.Address)
				if err != nil {
					return err
				}
				if *showJSON {
					return printJSON(cmd.OutOrStdout(), accountShowJSON{accountJSON: toAccountJSON(*acct),
						EffectiveQuota: *toLimitJSON(&limit), Usage: limitJSON(usage)})
				}
				w := table(cmd.OutOrStdout())
				fmt.Fprintf(w, "address:\t%s\n", acct.Address)
				fmt.Fprintf(w, "name:\t%s\n", acct.Name)
				fmt.Fprintf(w, "state:\t%s\n", onOff(acct.Active))
				fmt.Fprintf(w, "quota:\t%s (%s)\n", formatLimit(&limit), formatLimit(acct.Quota))
				fmt.Fprintf(w, "usage:\t%s in %d messages\n", formatUsage(usage.Bytes), usage.Messages)
				if acct.Maildir != "" {
					fmt.Fprintf(w, "maildir:\t%s\n", acct.Maildir)
				}
				return w.Flush()
			})
		},
	}
	usersJSON, showJSON = jsonFlag(list), jsonFlag(show)
	cmd.AddCommand(add, del, passwd, list, show)
	return cmd
}

func (a *app) aliasCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "alias", Short: "Add, delete and list aliases (source @domain is a catch-all)"}
	cmd.AddCommand(a.pairCommands(pairMap{
		source:    "SOURCE",
		target:    "DESTINATION",
		addShort:  "Deliver mail for SOURCE to each DESTINATION",
		delShort:  "Delete one destination of an alias, or the whole alias",
		listShort: "List aliases",
		add: func(ctx context.Context, dir *directory, src, dest string) error {
			// The directory's "not found" would not say it is the domain
			// that is missing.
			if err := requireLocalDomain(ctx, dir, src); err != nil {
				return err
			}
			return dir.domains.AddAlias(ctx, src, dest)
		},
		del: func(ctx context.Context, dir *directory, src, dest string) error {
			return dir.domains.DeleteAlias(ctx, src, dest)
		},
		list: func(ctx context.Context, dir *directory, domain string) ([]pair, error) {
			as, err := dir.domains.ListAliases(ctx, domain)
			ps := make([]pair, len(as))
			for i, al := range as {
				ps[i] = pair{al.Source, al.Destination}
			}
			return ps, err
		},
		added: func(src, dest string) string { return fmt.Sprintf("alias %s → %s added", src, dest) },
		warn: func(ctx context.Context, dir *directory, src, dest string) string {
			// A local destination that resolves to nothing bounces what
			// the alias receives; a remote one is the remote's business.
			_, domain, _ := userdb.Split(dest)
			if local, err := dir.users.IsLocalDomain(ctx, domain); err != nil || !local {
				return ""
			}
			if _, err := dir.users.Resolve(ctx, dest); errors.Is(err, userdb.ErrNotFound) {
				return fmt.Sprintf("%s is neither a mailbox nor an alias here: mail to %s bounces for it until it exists", dest, src)
			}
			return ""
		},
		deleted: func(src, dest string) string {
			if dest == "" {
				return fmt.Sprintf("alias %s deleted", src)
			}
			return fmt.Sprintf("alias %s → %s deleted", src, dest)
		},
	}))
	return cmd
}

func (a *app) quotaCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "quota", Short: "Set and show quotas"}
	var messages int64
	var inherit bool
	set := &cobra.Command{
		Use:   "set ADDRESS SIZE",
		Short: "Set an account's quota (SIZE like 1G; 0 = unlimited; --inherit = the domain default)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := userdb.Canonical(args[0])
			if err != nil {
				return badArg(cmd, err)
			}
			var limit *userdb.Limit
			if !inherit {
				if len(args) != 2 {
					return badArg(cmd, errors.New("give a SIZE (like 500M or 1.5G), or --inherit"))
				}
				n, err := parseByteSize(args[1])
				if err != nil {
					return badArg(cmd, err)
				}
				limit = &userdb.Limit{Bytes: n, Messages: messages}
			}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				if err := dir.accounts.SetAccountQuota(ctx, addr, limit); err != nil {
					return explain(err, "user "+addr, "user list")
				}
				fmt.Fprintf(cmd.OutOrStdout(), "quota of %s: %s\n", addr, formatLimit(limit))
				return nil
			})
		},
	}
	set.Flags().Int64Var(&messages, "messages", 0, "message count limit (0 = unlimited)")
	set.Flags().BoolVar(&inherit, "inherit", false, "use the domain's default quota")
	var quotaJSON *bool
	show := &cobra.Command{
		Use:   "show ADDRESS",
		Short: "Show an account's quota limit and usage",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				addr, err := userdb.Canonical(args[0])
				if err != nil {
					return err
				}
				limit, err := dir.users.QuotaLimit(ctx, addr)
				if err != nil {
					return explain(err, "user "+addr, "user list")
				}
				usage, err := dir.users.Quotas.Usage(ctx, addr)
				if err != nil {
					return err
				}
				if *quotaJSON {
					return printJSON(cmd.OutOrStdout(), quotaJSONRow{Address: addr, Limit: *toLimitJSON(&limit), Usage: limitJSON(usage)})
				}
				w := table(cmd.OutOrStdout())
				fmt.Fprintln(w, "ADDRESS\tUSED\tLIMIT\tMESSAGES\tMESSAGE LIMIT")
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", addr, formatByteSize(usage.Bytes), sizeOrDash(limit.Bytes), usage.Messages, limitOrDash(limit.Messages))
				return w.Flush()
			})
		},
	}
	quotaJSON = jsonFlag(show)
	cmd.AddCommand(set, show, a.quotaRecalcCommand())
	return cmd
}

// quotaRecalcCommand repairs usage counters from the Maildir files: they
// drift when a release fails after an expunge, or when mail is changed
// behind vmaild's back (restored from a backup, moved by hand).
func (a *app) quotaRecalcCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "recalc [ADDRESS]",
		Short: "Recompute quota usage from the Maildir files (one account, or every account)",
		Long: "Measures every folder of the account's Maildir (new/ and cur/) and overwrites the\n" +
			"usage stored in SQL. An account without a Maildir yet uses nothing. Mail delivered\n" +
			"while it runs may be counted or not; run it again to settle.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := a.cfg.Store.Root
			if _, err := os.Stat(root); err != nil {
				// A wrong store.root would otherwise "measure" every
				// account as empty and zero its usage.
				return fmt.Errorf("store.root %s: %w", root, err)
			}
			st := &store.Store{Root: root, PathTemplate: a.cfg.Store.PathTemplate, Hostname: a.cfg.Hostname}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				var accts []userdb.Account
				if len(args) == 1 {
					acct, err := dir.users.Account(ctx, args[0])
					if err != nil {
						return err
					}
					accts = []userdb.Account{*acct}
				} else {
					var err error
					if accts, err = dir.accounts.ListAccounts(ctx, ""); err != nil {
						return err
					}
				}
				w := table(cmd.OutOrStdout())
				fmt.Fprintln(w, "ADDRESS\tBYTES\tMESSAGES\tWAS BYTES\tWAS MESSAGES")
				failed := 0
				for _, acct := range accts {
					u, was, err := recalcAccount(ctx, st, dir.users.Quotas, acct)
					if err != nil {
						if userdb.Temporary(err) || ctx.Err() != nil {
							w.Flush()
							return err
						}
						fmt.Fprintf(w, "%s\tfailed: %v\n", acct.Address, err)
						failed++
						continue
					}
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\n", acct.Address, u.Bytes, u.Messages, was.Bytes, was.Messages)
				}
				if err := w.Flush(); err != nil {
					return err
				}
				if failed > 0 {
					return fmt.Errorf("quota recalc: %d of %d accounts failed", failed, len(accts))
				}
				return nil
			})
		},
	}
}

// recalcAccount measures one account's Maildir and stores the result,
// returning the new usage and the one it replaced.
func recalcAccount(ctx context.Context, st *store.Store, quotas userdb.QuotaStore, acct userdb.Account) (now, was userdb.Usage, err error) {
	b, m, err := st.Recalc(ctx, acct.Address, acct.Maildir)
	if errors.Is(err, store.ErrNotFound) {
		b, m, err = 0, 0, nil // never received mail
	}
	if err != nil {
		return now, was, err
	}
	if was, err = quotas.Usage(ctx, acct.Address); err != nil {
		return now, was, err
	}
	now = userdb.Usage{Bytes: b, Messages: m}
	return now, was, quotas.SetUsage(ctx, acct.Address, now)
}

func limitOrDash(n int64) string {
	if n <= 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

// sizeOrDash is limitOrDash for a size, with units.
func sizeOrDash(n int64) string {
	if n <= 0 {
		return "-"
	}
	return formatByteSize(n)
}

// requireLocalDomain refuses an address (or @domain) of a domain this
// server does not serve, saying how to add it.
func requireLocalDomain(ctx context.Context, dir *directory, addr string) error {
	_, domain, _ := userdb.Split(addr)
	if strings.HasPrefix(addr, "@") {
		domain = addr[1:]
	}
	if ok, err := dir.users.IsLocalDomain(ctx, domain); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("domain %s is not a local domain: add it first with `vmaild domain add %s`", domain, domain)
	}
	return nil
}

// formatUsage is a size in use: "0 bytes", "512 bytes", "4K", "1.5G".
func formatUsage(n int64) string {
	if s := formatByteSize(n); s != strconv.FormatInt(n, 10) {
		return s
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
