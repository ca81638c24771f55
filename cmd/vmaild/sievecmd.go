package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/sieve"
	"github.com/vmaild/vmaild/backend/sievestore"
	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/userdb"
)

// activeScriptName is where a user's active Sieve script lives in the
// mail home (the Maildir's parent), as Pigeonhole keeps it: a link to
// sieve/NAME.sieve, or a plain file.
const activeScriptName = ".dovecot.sieve"

func (a *app) sieveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sieve",
		Short: "Check Sieve scripts and show what they would do with a message",
	}
	var script, from, to string
	var spam, virus float64
	test := &cobra.Command{
		Use:   "test [USER] MESSAGE",
		Short: "Print the actions a Sieve script takes on MESSAGE (a file, - for standard input), like Pigeonhole's sieve-test",
		Long: "Runs what delivery runs for USER (delivery.sieve_before scripts, the active script\n" +
			"~/.dovecot.sieve in the mail home as Pigeonhole keeps it, delivery.sieve_after\n" +
			"scripts), or the script --script names, on MESSAGE and prints the actions; nothing is\n" +
			"delivered or sent. The envelope recipient is USER (or --to), the sender --from\n" +
			"(default: the message's Return-Path, else <>).",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (script == "") == (len(args) == 1) {
				return errors.New("give USER and MESSAGE, or --script FILE and MESSAGE")
			}
			msgPath := args[len(args)-1]
			raw, err := readFileOrStdin(cmd, msgPath)
			if err != nil {
				return err
			}
			env := sieve.Env{From: from, To: to, SubaddressSeparator: a.cfg.UserDB.RecipientDelimiter}
			paths := []string{script}
			if len(args) == 2 {
				if env.To == "" {
					env.To = args[0]
				}
				if paths, err = a.deliveryScripts(cmd.Context(), args[0]); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("spam-score") {
				env.Spam = sieve.ScoreVerdict(spam, 10, false)
			}
			if cmd.Flags().Changed("virus-score") {
				env.Virus = sieve.ScoreVerdict(virus, 5, true)
			}
			return runSieveTest(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), paths, raw, env, !cmd.Flags().Changed("from"))
		},
	}
	test.Flags().StringVar(&script, "script", "", "run this script file instead of USER's active script")
	test.Flags().StringVar(&from, "from", "", "envelope sender (MAIL FROM); empty is <>")
	test.Flags().StringVar(&to, "to", "", "envelope recipient (default USER)")
	test.Flags().Float64Var(&spam, "spam-score", 0, "spam scanner score out of 10, for spamtest (default: not scanned)")
	test.Flags().Float64Var(&virus, "virus-score", 0, "virus scanner score out of 5, for virustest (default: not scanned)")
	check := &cobra.Command{
		Use:   "check FILE | USER [NAME]",
		Short: "Compile a script file, or a user's scripts, and report each error with its line",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Stat(args[0]); len(args) == 1 && (err == nil || args[0] == "-") {
				src, err := readFileOrStdin(cmd, args[0])
				return checkScript(cmd.OutOrStdout(), args[0], src, err)
			}
			scripts, err := a.userScripts(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			names := args[1:]
			if len(names) == 0 {
				list, err := scripts.List()
				if err != nil {
					return err
				}
				for _, i := range list {
					names = append(names, i.Name)
				}
			}
			var failed error
			for _, n := range names {
				src, err := scripts.Get(n)
				if err := checkScript(cmd.OutOrStdout(), n, src, err); err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					failed = errors.New("some scripts do not compile")
				}
			}
			return failed
		},
	}
	list := &cobra.Command{
		Use:   "list USER",
		Short: "List USER's scripts, the active one marked",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			scripts, err := a.userScripts(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			list, err := scripts.List()
			if err != nil {
				return err
			}
			w := table(cmd.OutOrStdout())
			fmt.Fprintln(w, "NAME\tSIZE\tACTIVE")
			for _, i := range list {
				active := ""
				if i.Active {
					active = "yes"
				}
				fmt.Fprintf(w, "%s\t%d\t%s\n", i.Name, i.Size, active)
			}
			return w.Flush()
		},
	}
	get := &cobra.Command{
		Use:   "get USER NAME",
		Short: "Print USER's script NAME",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			scripts, err := a.userScripts(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			src, err := scripts.Get(args[1])
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(src)
			return err
		},
	}
	var activate bool
	put := &cobra.Command{
		Use:   "put USER NAME [FILE]",
		Short: "Store a script (FILE, default standard input) as USER's NAME once it compiles",
		Args:  cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "-"
			if len(args) == 3 {
				path = args[2]
			}
			src, err := readFileOrStdin(cmd, path)
			if err != nil {
				return err
			}
			scripts, err := a.userScripts(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			// The limits ManageSieve enforces (sieve.max_*): the admin
			// stores in the user's name.
			if err := scripts.CheckQuota(a.cfg.sieveQuota(), args[1], int64(len(src))); err != nil {
				return fmt.Errorf("%s: %w", args[1], err)
			}
			if err := scripts.Put(args[1], src, a.cfg.sieveOptions()); err != nil {
				return fmt.Errorf("%s: %w", args[1], err)
			}
			if activate {
				if err := scripts.Activate(args[1]); err != nil {
					return err
				}
			}
			if err := a.ownScripts(scripts, args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "script %s stored for %s%s\n", args[1], args[0], map[bool]string{true: " and active"}[activate])
			return nil
		},
	}
	put.Flags().BoolVar(&activate, "activate", false, "make it the active script too")
	activateCmd := &cobra.Command{
		Use:   "activate USER NAME",
		Short: "Make NAME USER's active script (the .dovecot.sieve link)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			scripts, err := a.userScripts(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if err := scripts.Activate(args[1]); err != nil {
				return err
			}
			if err := a.ownScripts(scripts, args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "script %s active for %s\n", args[1], args[0])
			return nil
		},
	}
	deactivate := &cobra.Command{
		Use:   "deactivate USER",
		Short: "Leave USER without an active script (mail goes to INBOX unfiltered)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			scripts, err := a.userScripts(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return scripts.Activate("")
		},
	}
	del := &cobra.Command{
		Use:   "delete USER NAME",
		Short: "Delete USER's script NAME (not the active one)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			scripts, err := a.userScripts(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return scripts.Delete(args[1])
		},
	}
	cmd.AddCommand(test, check, list, get, put, activateCmd, deactivate, del)
	return cmd
}

// checkScript compiles one script and says so.
func checkScript(w io.Writer, name string, src []byte, readErr error) error {
	if readErr != nil {
		return readErr
	}
	s, err := sieve.Compile(src, sieve.Options{})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(w, "%s: valid (requires: %s)\n", name, strings.Join(s.Requires(), ", "))
	return nil
}

func readFileOrStdin(cmd *cobra.Command, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(cmd.InOrStdin())
	}
	return os.ReadFile(path)
}

// userScripts are the scripts of user, in the mail home beside the
// account's Maildir.
func (a *app) userScripts(ctx context.Context, user string) (sievestore.Scripts, error) {
	var scripts sievestore.Scripts
	err := a.withDirectoryCtx(ctx, func(ctx context.Context, d *directory) error {
		acct, err := d.users.Account(ctx, user)
		if err != nil {
			return err
		}
		st := &store.Store{Root: a.cfg.Store.Root, PathTemplate: a.cfg.Store.PathTemplate}
		maildir, err := st.MaildirPath(acct.Address, acct.Maildir)
		if err != nil {
			return err
		}
		scripts.Home = sievestore.HomeOf(maildir)
		return nil
	})
	return scripts, err
}

// deliveryScripts are the scripts delivery runs for user, in order.
func (a *app) deliveryScripts(ctx context.Context, user string) ([]string, error) {
	var paths []string
	err := a.withDirectoryCtx(ctx, func(ctx context.Context, d *directory) error {
		acct, err := d.users.Account(ctx, user)
		if err != nil {
			return err
		}
		st := &store.Store{Root: a.cfg.Store.Root, PathTemplate: a.cfg.Store.PathTemplate}
		f := &delivery.Sieve{Maildir: st.MaildirPath, Before: a.cfg.Delivery.SieveBefore, After: a.cfg.Delivery.SieveAfter}
		dest := &delivery.Destination{Destination: userdb.Destination{Address: acct.Address, Local: true}, Maildir: acct.Maildir}
		paths, err = f.Paths(dest)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("%s has no active Sieve script, and no delivery.sieve_before or sieve_after script applies", user)
	}
	return paths, nil
}

func (a *app) withDirectoryCtx(ctx context.Context, fn func(ctx context.Context, d *directory) error) error {
	d, err := a.openDirectory(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(ctx, d)
}

// ownScripts gives what a root CLI wrote in a mail home to run_as, so
// the server can read and rewrite it.
func (a *app) ownScripts(s sievestore.Scripts, name string) error {
	if os.Geteuid() != 0 || a.cfg.RunAs == "" {
		return nil
	}
	uid, gid, err := runAsIDs(a.cfg.RunAs)
	if err != nil {
		return err
	}
	for _, p := range []string{s.Home, filepath.Join(s.Home, sievestore.Dir), s.Path(name), filepath.Join(s.Home, sievestore.ActiveLink)} {
		if err := os.Lchown(p, uid, gid); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sieve script for run_as %s: %w", a.cfg.RunAs, err)
		}
	}
	return nil
}

// runSieveTest compiles the scripts at paths and prints what they do, in
// sequence as delivery runs them, with raw, in sieve-test's layout.
func runSieveTest(ctx context.Context, out, errOut io.Writer, paths []string, raw []byte, env sieve.Env, senderFromMessage bool) error {
	var scripts []*sieve.Script
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s, err := sieve.Compile(src, sieve.Options{})
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		scripts = append(scripts, s)
	}
	msg := sieve.ParseMessage(raw)
	if senderFromMessage {
		env.From = msg.ReturnPath()
	}
	env.Now = time.Now()
	if len(paths) > 1 {
		fmt.Fprintf(errOut, "scripts, in order: %s\n", strings.Join(paths, ", "))
	}
	res, err := sieve.RunAll(ctx, scripts, env, msg)
	if err != nil {
		fmt.Fprintf(errOut, "%v; the message is kept\n", err)
	}
	printResult(out, res)
	return nil
}

// printResult writes res the way Pigeonhole's sieve-test does, so admins
// moving from Dovecot read the same report.
func printResult(w io.Writer, res *sieve.Result) {
	fmt.Fprint(w, "\nPerformed actions:\n\n")
	if len(res.Actions) == 0 {
		fmt.Fprint(w, "  (none)\n")
	}
	for _, a := range res.Actions {
		switch a.Kind {
		case sieve.Keep:
			fmt.Fprint(w, " * store message in folder: INBOX\n")
		case sieve.FileInto:
			fmt.Fprintf(w, " * store message in folder: %s\n", a.Mailbox)
		case sieve.Redirect:
			fmt.Fprintf(w, " * redirect message to: <%s>\n", a.Address)
		case sieve.Reject:
			fmt.Fprintf(w, " * reject message with reason: %s\n", oneLine(a.Reason))
		case sieve.EReject:
			fmt.Fprintf(w, " * reject message at the protocol level with reason: %s\n", oneLine(a.Reason))
		case sieve.Discard:
			fmt.Fprint(w, " * discard\n")
		case sieve.Vacation:
			v := a.Vacation
			fmt.Fprint(w, " * send vacation message:\n")
			fmt.Fprintf(w, "    => seconds : %d\n", int64(v.Period/time.Second))
			if v.Subject != "" {
				fmt.Fprintf(w, "    => subject : %s\n", v.Subject)
			}
			if v.From != "" {
				fmt.Fprintf(w, "    => from    : %s\n", v.From)
			}
			if len(v.Addresses) > 0 {
				fmt.Fprintf(w, "    => addresses : %s\n", strings.Join(v.Addresses, ", "))
			}
			fmt.Fprintf(w, "    => handle  : %s\n", v.Handle)
			fmt.Fprintf(w, "\nSTART MESSAGE\n%s\nEND MESSAGE\n", v.Reason)
		}
		if a.Kind == sieve.Keep || a.Kind == sieve.FileInto {
			if a.Create {
				fmt.Fprint(w, "        + create mailbox if it does not exist\n")
			}
		}
		if a.Copy {
			fmt.Fprint(w, "        + preserve implicit keep\n")
		}
		if len(a.Flags) > 0 {
			fmt.Fprintf(w, "        + add IMAP flags: %s\n", strings.Join(a.Flags, " "))
		}
	}
	fmt.Fprint(w, "\nImplicit keep:\n\n")
	if !res.ImplicitKeep {
		fmt.Fprint(w, "  (none)\n\n")
		return
	}
	fmt.Fprint(w, " * store message in folder: INBOX\n")
	if len(res.KeepFlags) > 0 {
		fmt.Fprintf(w, "        + add IMAP flags: %s\n", strings.Join(res.KeepFlags, " "))
	}
	fmt.Fprintln(w)
}

func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ").Replace(s)
}
