package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmaild/vmaild/protocols/control"
)

// callDaemon runs a control operation on the running server. ran is false
// when no server answers on the control socket: the caller then works on
// the files, as it would with the server stopped.
func (a *app) callDaemon(ctx context.Context, op string, req, resp any) (ran bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	err = (&control.Client{Socket: a.cfg.Control.Socket}).Call(ctx, op, req, resp)
	if errors.Is(err, control.ErrNoDaemon) {
		return false, nil
	}
	return true, err
}

// notRunning is the error of a command that needs the server: exit
// status 3, as LSB init scripts say "not running".
type notRunning struct{ socket string }

func (e notRunning) Error() string {
	return fmt.Sprintf("vmaild serve is not running (nothing answers on the control socket %s)", e.socket)
}
func (notRunning) ExitCode() int { return 3 }

// controlCommands are the commands that only make sense with a running
// server (the queue commands, in queuecmd.go, also work without one).
func (a *app) controlCommands() []*cobra.Command {
	authCache := &cobra.Command{Use: "auth-cache", Short: "The running server's cache of accounts and verified passwords"}
	authCache.AddCommand(&cobra.Command{
		Use:   "flush [USER]",
		Short: "Forget what the running server cached about USER (or everyone): a changed password takes effect at once",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := authFlushRequest{}
			if len(args) == 1 {
				req.User = args[0]
			}
			var ans authFlushAnswer
			ran, err := a.callDaemon(cmd.Context(), opAuthFlush, req, &ans)
			switch {
			case !ran:
				// Each command opens the directory afresh: nothing to forget.
				fmt.Fprintln(cmd.OutOrStdout(), "vmaild serve is not running: nothing is cached")
				return nil
			case err != nil:
				return fmt.Errorf("auth-cache flush: %w", err)
			}
			if ans.Flushed == "all" {
				fmt.Fprintln(cmd.OutOrStdout(), "flushed the whole directory cache")
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "flushed %s from the directory cache\n", ans.Flushed)
			}
			return nil
		},
	})
	reload := &cobra.Command{
		Use:   "reload",
		Short: "Make the running server read its configuration again (what can change without a restart)",
		Long: "Applies log.level, userdb.cache.ttl, userdb.cache.negative_ttl and\n" +
			"sending_limits.account and .domain, and reloads the TLS certificate files (as SIGHUP\n" +
			"does); names every other section that changed, which needs a restart. A configuration\n" +
			"with errors changes nothing.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var ans reloadAnswer
			ran, err := a.callDaemon(cmd.Context(), opReload, nil, &ans)
			switch {
			case !ran:
				return notRunning{a.cfg.Control.Socket}
			case err != nil:
				return fmt.Errorf("reload: %w", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "applied: %s\n", listOrNone(ans.Applied))
			fmt.Fprintf(out, "certificate: %s\n", ans.Certificate)
			fmt.Fprintf(out, "dkim: %s\n", ans.DKIM)
			if len(ans.NeedRestart) > 0 {
				fmt.Fprintf(out, "changed, needs a restart: %s\n", strings.Join(ans.NeedRestart, ", "))
			}
			return nil
		},
	}
	var statusJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the running server: listeners and their connections, queue, directory cache",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var st statusAnswer
			ran, err := a.callDaemon(cmd.Context(), opStatus, nil, &st)
			switch {
			case !ran:
				return notRunning{a.cfg.Control.Socket}
			case err != nil:
				return fmt.Errorf("status: %w", err)
			}
			out := cmd.OutOrStdout()
			if statusJSON {
				return printJSON(out, st)
			}
			fmt.Fprintf(out, "vmaild serve running, pid %d, up %s\n", st.PID, time.Since(st.Started).Round(time.Second))
			w := table(out)
			fmt.Fprintln(w, "LISTENER\tADDRESS\tCONNECTIONS\tLOGGED IN")
			for _, l := range st.Gate.Listeners {
				fmt.Fprintf(w, "%s\t%s\t%d\t%d\n", l.Name, l.Address, l.Connections, l.Authenticated)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(out, "connections: %d open, %d not logged in\n", st.Gate.Connections, st.Gate.Unauthenticated)
			fmt.Fprintf(out, "queue: %d messages (%d held), %d recipients pending, %d transactions running\n",
				st.Queue.Items, st.Held, st.Queue.Pending, st.Queue.Running)
			fmt.Fprintf(out, "directory cache: ttl %s, negative ttl %s, %d hits, %d misses\n", st.CacheTTL, st.CacheNeg, st.CacheHits, st.CacheMiss)
			fmt.Fprintf(out, "log level: %s\n", st.LogLevel)
			return nil
		},
	}
	status.Flags().BoolVar(&statusJSON, "json", false, "print one JSON object")
	return []*cobra.Command{authCache, reload, status}
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "nothing changed"
	}
	return strings.Join(s, ", ")
}
