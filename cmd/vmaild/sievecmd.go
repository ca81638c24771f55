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

	"github.com/vmaild/vmaild/backend/sieve"
	"github.com/vmaild/vmaild/backend/store"
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
		Long: "Runs USER's active script (~/.dovecot.sieve in the mail home, Pigeonhole's place),\n" +
			"or the script --script names, on MESSAGE and prints the actions; nothing is\n" +
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
			src := script
			if len(args) == 2 {
				if env.To == "" {
					env.To = args[0]
				}
				if src, err = a.activeScript(cmd.Context(), args[0]); err != nil {
					return err
				}
			}
			if cmd.Flags().Changed("spam-score") {
				env.Spam = sieve.ScoreVerdict(spam, 10, false)
			}
			if cmd.Flags().Changed("virus-score") {
				env.Virus = sieve.ScoreVerdict(virus, 5, true)
			}
			return runSieveTest(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), src, raw, env, !cmd.Flags().Changed("from"))
		},
	}
	test.Flags().StringVar(&script, "script", "", "run this script file instead of USER's active script")
	test.Flags().StringVar(&from, "from", "", "envelope sender (MAIL FROM); empty is <>")
	test.Flags().StringVar(&to, "to", "", "envelope recipient (default USER)")
	test.Flags().Float64Var(&spam, "spam-score", 0, "spam scanner score out of 10, for spamtest (default: not scanned)")
	test.Flags().Float64Var(&virus, "virus-score", 0, "virus scanner score out of 5, for virustest (default: not scanned)")
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "Compile a Sieve script and report the first error with its line",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := readFileOrStdin(cmd, args[0])
			if err != nil {
				return err
			}
			s, err := sieve.Compile(src, sieve.Options{})
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (requires: %s)\n", args[0], strings.Join(s.Requires(), ", "))
			return nil
		},
	}
	check.Annotations = map[string]string{"noconfig": "yes"}
	cmd.AddCommand(test, check)
	return cmd
}

func readFileOrStdin(cmd *cobra.Command, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(cmd.InOrStdin())
	}
	return os.ReadFile(path)
}

// activeScript finds the path of user's active script.
func (a *app) activeScript(ctx context.Context, user string) (string, error) {
	var path string
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
		path = filepath.Join(filepath.Dir(maildir), activeScriptName)
		return nil
	})
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s has no active Sieve script: %w", user, err)
	}
	return path, nil
}

func (a *app) withDirectoryCtx(ctx context.Context, fn func(ctx context.Context, d *directory) error) error {
	d, err := a.openDirectory(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(ctx, d)
}

// runSieveTest compiles the script at path and prints what it does with
// raw, in sieve-test's layout.
func runSieveTest(ctx context.Context, out, errOut io.Writer, path string, raw []byte, env sieve.Env, senderFromMessage bool) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s, err := sieve.Compile(src, sieve.Options{})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	msg := sieve.ParseMessage(raw)
	if senderFromMessage {
		env.From = msg.ReturnPath()
	}
	env.Now = time.Now()
	res, err := s.Run(ctx, env, msg)
	if err != nil {
		fmt.Fprintf(errOut, "%s: %v; the message is kept\n", path, err)
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
