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
	add, del, list := a.pairCommands(pairMap{
		source:    "ADDRESS",
		target:    "LOGIN",
		addShort:  "Let each LOGIN (an account) send as ADDRESS",
		delShort:  "Take back one login's grant for ADDRESS, or every grant for it",
		listShort: "List the grants, of one domain's addresses or all",
		checkTarget: func(ctx context.Context, dir *directory, l string) (string, error) {
			login, err := userdb.Canonical(l)
			if err != nil {
				return "", fmt.Errorf("login %q: %w", l, err)
			}
			// A grant to a mistyped login would silently grant nothing,
			// or later something to someone else.
			if _, err := dir.users.Account(ctx, login); errors.Is(err, userdb.ErrNotFound) {
				return "", fmt.Errorf("no account %s: add it first with `vmaild user add %s`", login, login)
			} else if err != nil {
				return "", err
			}
			return login, nil
		},
		add: func(ctx context.Context, dir *directory, addr, login string) error {
			return dir.senders.AddSender(ctx, addr, login)
		},
		del: func(ctx context.Context, dir *directory, addr, login string) error {
			return dir.senders.DeleteSender(ctx, addr, login)
		},
		list: func(ctx context.Context, dir *directory, domain string) ([]pair, error) {
			gs, err := dir.senders.ListSenders(ctx, domain)
			ps := make([]pair, len(gs))
			for i, g := range gs {
				ps[i] = pair{g.Address, g.Login}
			}
			return ps, err
		},
		added: func(addr, login string) string { return fmt.Sprintf("%s may send as %s", login, addr) },
		deleted: func(addr, login string) string {
			if login == "" {
				return fmt.Sprintf("every grant for %s deleted", addr)
			}
			return senderRevoked(addr, login)
		},
	})
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
		fmt.Fprintln(out, senderRevoked(g.Address, login))
	}
	return nil
}

// senderRevoked is the line that says login lost its grant for addr.
func senderRevoked(addr, login string) string {
	return fmt.Sprintf("%s may no longer send as %s", login, addr)
}
