package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/vmaild/vmaild/userdb"
)

// senderCommand manages the SQL sender map: who may send as an address
// besides its owner (Postfix's smtpd_sender_login_maps).
func (a *app) senderCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sender",
		Short: "Let accounts send as addresses that are not their own (ADDRESS @domain: every address of the domain)",
		Long: "An account may send as its own address, its plus forms and the same local part in\n" +
			"an alias domain of its domain. Anything else needs a grant here (or, for LDAP\n" +
			"accounts, in ldap.attributes.sender_address): receiving mail for an alias or a\n" +
			"catch-all gives no right to send as it.",
	}
	add := &cobra.Command{
		Use:   "add ADDRESS LOGIN...",
		Short: "Let each LOGIN (an account) send as ADDRESS",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, _, err := userdb.MapKey(args[0])
			if err != nil {
				return err
			}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				for _, l := range args[1:] {
					login, err := userdb.Canonical(l)
					if err != nil {
						return fmt.Errorf("login %q: %w", l, err)
					}
					// A grant to a mistyped login would silently grant
					// nothing, or later something to someone else.
					if _, err := dir.users.Account(ctx, login); errors.Is(err, userdb.ErrNotFound) {
						return fmt.Errorf("no account %s: add it first with `vmaild user add %s`", login, login)
					} else if err != nil {
						return err
					}
					if err := dir.senders.AddSender(ctx, addr, login); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s may send as %s\n", login, addr)
				}
				return nil
			})
		},
	}
	del := &cobra.Command{
		Use:   "del ADDRESS [LOGIN]",
		Short: "Take back one login's grant for ADDRESS, or every grant for it",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, _, err := userdb.MapKey(args[0])
			if err != nil {
				return err
			}
			login := ""
			if len(args) == 2 {
				if login, err = userdb.Canonical(args[1]); err != nil {
					return err
				}
			}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				if err := dir.senders.DeleteSender(ctx, addr, login); err != nil {
					return err
				}
				if login == "" {
					fmt.Fprintf(cmd.OutOrStdout(), "every grant for %s deleted\n", addr)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%s may no longer send as %s\n", login, addr)
				}
				return nil
			})
		},
	}
	list := &cobra.Command{
		Use:   "list [DOMAIN]",
		Short: "List the grants, of one domain's addresses or all",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			domain, err := domainArg(args)
			if err != nil {
				return err
			}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				gs, err := dir.senders.ListSenders(ctx, domain)
				if err != nil {
					return err
				}
				w := table(cmd.OutOrStdout())
				fmt.Fprintln(w, "ADDRESS\tLOGIN")
				for _, g := range gs {
					fmt.Fprintf(w, "%s\t%s\n", g.Address, g.Login)
				}
				return w.Flush()
			})
		},
	}
	check := &cobra.Command{
		Use:   "check ACCOUNT ADDRESS",
		Short: "Say whether ACCOUNT may send as ADDRESS, as submission decides it (exit 1 if not)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			account, err := userdb.Canonical(args[0])
			if err != nil {
				return err
			}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				ok, err := dir.users.MaySendAs(ctx, account, args[1])
				if err != nil {
					return err
				}
				if !ok {
					// An error, so the exit status tells scripts the answer.
					return fmt.Errorf("%s may not send as %s", account, args[1])
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s may send as %s\n", account, args[1])
				return nil
			})
		},
	}
	cmd.AddCommand(add, del, list, check)
	return cmd
}

// dropSenderGrants deletes every grant the sender map holds for login.
func dropSenderGrants(ctx context.Context, out io.Writer, senders userdb.SenderAdmin, login string) error {
	gs, err := senders.ListSenders(ctx, "")
	if err != nil {
		return fmt.Errorf("sender grants of %s: %w", login, err)
	}
	for _, g := range gs {
		if g.Login != login {
			continue
		}
		if err := senders.DeleteSender(ctx, g.Address, login); err != nil && !errors.Is(err, userdb.ErrNotFound) {
			return err
		}
		fmt.Fprintf(out, "%s may no longer send as %s\n", login, g.Address)
	}
	return nil
}
