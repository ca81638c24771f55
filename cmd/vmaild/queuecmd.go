package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/queue"
	"github.com/vmaild/vmaild/backend/store"
)

// The spool has one owner at a time (a flock): the running `vmaild serve`,
// or else an admin command. Listing never needs ownership (queue.Inspect
// reads the files as they are); changing the queue does, because two
// processes changing one spool could deliver a message twice or deliver
// one an admin deleted. So while serve runs, every queue command asks it
// over the control socket (control.go); without it, the command owns the
// spool for the time it runs.

func (a *app) queueCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "queue", Short: "List, show, flush, retry, hold, release and delete outbound messages"}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List queued messages and the state of their recipients",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var items []queue.Item
			ran, err := a.callDaemon(cmd.Context(), opQueueList, nil, &items)
			if !ran {
				items, err = a.inspectQueue(cmd.Context())
			} else if err != nil {
				return fmt.Errorf("queue list: %w", err)
			}
			if asJSON {
				if items == nil {
					items = []queue.Item{}
				}
				if jerr := printJSON(cmd.OutOrStdout(), items); jerr != nil {
					return jerr
				}
				return err
			}
			w := table(cmd.OutOrStdout())
			fmt.Fprintln(w, "ID\tSIZE\tQUEUED\tFROM\tRECIPIENTS\tNEXT ATTEMPT")
			for _, it := range items {
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", it.ID, it.Size, it.Created.Format(time.RFC3339),
					sender(it), recipientSummary(it), nextAttempt(it))
			}
			if ferr := w.Flush(); ferr != nil {
				return ferr
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d queued\n", len(items))
			return err
		},
	}
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a queued message: envelope, each recipient's state and last reply, the message",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.showQueued(cmd.Context(), cmd.OutOrStdout(), args[0], asJSON)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print a JSON list of the messages and their recipients")
	show.Flags().BoolVar(&asJSON, "json", false, `print one JSON object: {"item": …, "message": base64}`)
	var timeout time.Duration
	flush := &cobra.Command{
		Use:   "flush [ID]",
		Short: "Attempt delivery of every pending recipient now (of one message, or all)",
		Long: "With `vmaild serve` running, the server attempts every pending recipient (of message ID,\n" +
			"or of every message not on hold) now, retry times ignored; the command returns at once.\n" +
			"Without a server it runs the queue in this process, as `sendmail -q` does, and returns\n" +
			"when each has been tried once; other messages that are due go out too.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			return a.retryQueued(cmd, timeout, opQueueFlush, id, "")
		},
	}
	flush.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "without a server: give up waiting for the attempts after this long")
	retry := &cobra.Command{
		Use:   "retry ID [RECIPIENT]",
		Short: "Attempt one message (or one of its recipients) now",
		Long: "Makes the pending recipients of message ID (or only RECIPIENT, with the others\n" +
			"at its domain: one SMTP transaction per domain) due now. A message on hold is\n" +
			"refused: release it first. Without a server the attempt runs in this process.",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rcpt := ""
			if len(args) == 2 {
				rcpt = args[1]
			}
			return a.retryQueued(cmd, timeout, opQueueRetry, args[0], rcpt)
		},
	}
	retry.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "without a server: give up waiting for the attempt after this long")
	hold := &cobra.Command{
		Use:   "hold ID...",
		Short: "Stop delivery attempts for messages until they are released (kept across restarts)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.eachQueued(cmd, "hold", opQueueHold, "held", args, (*queue.Queue).Hold)
		},
	}
	release := &cobra.Command{
		Use:   "release ID...",
		Short: "End the hold on messages: they are attempted at their planned times",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.eachQueued(cmd, "release", opQueueRelease, "released", args, (*queue.Queue).Unhold)
		},
	}
	del := &cobra.Command{
		Use:     "delete ID...",
		Aliases: []string{"purge"},
		Short:   "Remove messages from the queue without bouncing them",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.eachQueued(cmd, "delete", opQueueDelete, "deleted", args, (*queue.Queue).Delete)
		},
	}
	cmd.AddCommand(list, show, flush, retry, hold, release, del)
	return cmd
}

// eachQueued applies one change to each id: through the running server, or
// on the spool when none runs.
func (a *app) eachQueued(cmd *cobra.Command, what, op, done string, ids []string, change func(*queue.Queue, context.Context, string) error) error {
	ctx := cmd.Context()
	var q *queue.Queue
	for _, id := range ids {
		ran, err := a.callDaemon(ctx, op, queueRequest{ID: id}, nil)
		if !ran {
			if q == nil {
				if q, err = a.ownQueue(what, nil); err != nil {
					return err
				}
				defer q.Shutdown(context.WithoutCancel(ctx))
			}
			err = change(q, ctx, id)
		}
		if err != nil {
			return fmt.Errorf("queue %s: %w", what, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", done, id)
	}
	return nil
}

// retryQueued makes recipients due: the running server attempts them on
// its own; without one they are attempted here, in the foreground.
func (a *app) retryQueued(cmd *cobra.Command, timeout time.Duration, op, id, rcpt string) error {
	what := strings.TrimPrefix(op, "queue.")
	ran, err := a.callDaemon(cmd.Context(), op, queueRequest{ID: id, Rcpt: rcpt}, nil)
	if ran {
		if err != nil {
			return fmt.Errorf("queue %s: %w", what, err)
		}
		fmt.Fprintln(cmd.OutOrStdout(), "the server is attempting delivery now; `vmaild queue list` shows the outcome")
		return nil
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	return a.flushQueue(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), what, id, rcpt)
}

// inspectQueue reads the spool without owning it. A spool that was never
// created is an empty queue.
func (a *app) inspectQueue(ctx context.Context) ([]queue.Item, error) {
	items, err := queue.Inspect(ctx, a.cfg.Queue.Dir)
	if errors.Is(err, fs.ErrNotExist) && len(items) == 0 {
		return nil, nil
	}
	return items, err
}

// ownQueue opens the spool for changing it. A spool locked by the running
// server is refused with the reason, not just "locked".
func (a *app) ownQueue(what string, edit func(*queue.Config)) (*queue.Queue, error) {
	c := a.cfg.Queue
	qc := queue.Config{
		Dir: c.Dir, Hostname: a.cfg.Hostname, Resolver: c.Resolver, Port: c.Port,
		Workers: c.Workers, PerDomain: c.PerDomain, MaxAge: c.MaxAge,
	}
	sh, err := c.Smarthost.queueSmarthost()
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", what, err)
	}
	qc.Smarthost = sh
	// A flush without the server delivers under the same TLS policy.
	if err := c.queueTLS(&qc); err != nil {
		return nil, fmt.Errorf("queue %s: %w", what, err)
	}
	if edit != nil {
		edit(&qc)
	}
	q, err := queue.New(qc)
	if errors.Is(err, queue.ErrLocked) {
		return nil, fmt.Errorf("queue %s: the spool %s is in use by a running `vmaild serve` that does not answer on the control socket %s "+
			"(still starting, or its control.socket differs from this configuration's), or by another queue command; "+
			"only its owner may change it: try again, or point control.socket at the server's", what, c.Dir, a.cfg.Control.Socket)
	}
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", what, err)
	}
	return q, nil
}

func (a *app) showQueued(ctx context.Context, out io.Writer, id string, asJSON bool) error {
	var live queueShowAnswer
	ran, err := a.callDaemon(ctx, opQueueShow, queueRequest{ID: id}, &live)
	if ran {
		if err != nil {
			return fmt.Errorf("queue show: %w", err)
		}
		if asJSON {
			return printJSON(out, live)
		}
		if err := printQueued(out, &live.Item); err != nil {
			return err
		}
		fmt.Fprintln(out)
		_, err = out.Write(live.Message)
		return err
	}
	// No server: the envelope and state come from Inspect, the message
	// from owning the spool.
	items, err := a.inspectQueue(ctx)
	var it *queue.Item
	for i := range items {
		if items[i].ID == id {
			it = &items[i]
		}
	}
	if it == nil {
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: %q", queue.ErrNotFound, id)
	}
	if asJSON {
		// The message needs the spool's owner; without it, none.
		ans := queueShowAnswer{Item: *it}
		if q, err := a.ownQueue("show", nil); err == nil {
			defer q.Shutdown(context.WithoutCancel(ctx))
			if msg, err := q.Message(ctx, id); err == nil {
				ans.Message, err = io.ReadAll(msg)
				msg.Close()
				if err != nil {
					return fmt.Errorf("queue show: %w", err)
				}
			}
		}
		return printJSON(out, ans)
	}
	if err := printQueued(out, it); err != nil {
		return err
	}
	q, err := a.ownQueue("show", nil)
	if err != nil {
		fmt.Fprintf(out, "\n(message not shown: %v)\n", err)
		return nil
	}
	defer q.Shutdown(context.WithoutCancel(ctx))
	msg, err := q.Message(ctx, id)
	if err != nil {
		return fmt.Errorf("queue show: %w", err)
	}
	defer msg.Close()
	fmt.Fprintln(out)
	_, err = io.Copy(out, msg)
	return err
}

// printQueued prints an item's envelope and recipients.
func printQueued(out io.Writer, it *queue.Item) error {
	w := table(out)
	fmt.Fprintf(w, "id:\t%s\n", it.ID)
	fmt.Fprintf(w, "from:\t%s\n", sender(*it))
	fmt.Fprintf(w, "queued:\t%s\n", it.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "size:\t%d bytes\n", it.Size)
	if it.Bounce {
		fmt.Fprintf(w, "bounce:\tyes (a delivery status notification)\n")
	}
	if it.RequireTLS {
		fmt.Fprintf(w, "requiretls:\tyes (only over authenticated TLS, RFC 8689)\n")
	}
	fmt.Fprintf(w, "next attempt:\t%s\n", nextAttempt(*it))
	if err := w.Flush(); err != nil {
		return err
	}
	w = table(out)
	fmt.Fprintln(w, "RECIPIENT\tSTATE\tATTEMPTS\tLAST ATTEMPT\tNEXT ATTEMPT\tTLS POLICY\tLAST REPLY")
	for _, r := range it.Recipients {
		next := "-"
		if r.State == queue.Pending {
			next = formatWhen(r.NextAttempt)
		}
		policy := r.TLSPolicy
		if policy == "" {
			policy = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.Addr, r.State, r.Attempts, formatWhen(r.LastAttempt), next, policy, r.LastReply)
	}
	return w.Flush()
}

// flushQueue runs the queue in this process until every recipient pending
// at the start (of id, or of every item) has been attempted once. Bounces
// to local senders are delivered into the store, as the server does.
func (a *app) flushQueue(ctx context.Context, out, logTo io.Writer, what, id, rcpt string) error {
	dir, err := a.openDirectory(ctx)
	if err != nil {
		return err
	}
	defer dir.Close()
	log := slog.New(slog.NewTextHandler(logTo, nil))
	agent := &delivery.LocalAgent{
		Directory: dir.users, Quotas: dir.sql, Config: a.cfg.Delivery,
		Store:  &store.Store{Root: a.cfg.Store.Root, PathTemplate: a.cfg.Store.PathTemplate, Hostname: a.cfg.Hostname, Logger: log},
		Logger: log,
	}
	q, err := a.ownQueue(what, func(c *queue.Config) {
		c.Logger = log
		c.LocalDomain = func(domain string) bool {
			ok, err := dir.users.IsLocalDomain(context.Background(), domain)
			return ok || err != nil
		}
		c.Local = queueLocal(agent)
	})
	if err != nil {
		return err
	}
	agent.Queue = q
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
		defer cancel()
		q.Shutdown(sctx)
	}()

	before, err := q.List(ctx)
	if err != nil {
		return err
	}
	if id != "" {
		it, err := q.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("queue %s: %w", what, err)
		}
		before = []queue.Item{it}
	}
	// Made due before the queue starts: a refusal (on hold, no such
	// recipient) then leaves every message untouched.
	start := time.Now()
	if rcpt != "" {
		err = q.Retry(ctx, id, rcpt)
	} else {
		err = q.Flush(ctx, id)
	}
	if err != nil {
		return fmt.Errorf("queue %s: %w", what, err)
	}
	if err := q.Start(ctx); err != nil {
		return err
	}
	// Flush makes every pending recipient due; it has been tried once its
	// last attempt is newer than start (or it is no longer pending).
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !flushed(ctx, q, before, rcpt, start) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("queue %s: still delivering: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
	w := table(out)
	fmt.Fprintln(w, "ID\tRESULT")
	for _, b := range before {
		it, err := q.Get(ctx, b.ID)
		switch {
		case errors.Is(err, queue.ErrNotFound):
			fmt.Fprintf(w, "%s\tdone (delivered or bounced)\n", b.ID)
		case err != nil:
			return err
		case !hasPending(it):
			// Every recipient is done; the queue is removing the
			// item (it may still be listed for a moment).
			fmt.Fprintf(w, "%s\tdone (%s)\n", b.ID, recipientSummary(it))
		default:
			fmt.Fprintf(w, "%s\t%s, next attempt %s\n", b.ID, recipientSummary(it), formatWhen(it.NextAttempt))
		}
	}
	return w.Flush()
}

// flushed reports whether every recipient (or only rcpt, when not "")
// pending at start has been attempted since. Items on hold are not
// attempted and not waited for.
func flushed(ctx context.Context, q *queue.Queue, items []queue.Item, rcpt string, start time.Time) bool {
	if q.Stats().Running > 0 {
		return false
	}
	for _, b := range items {
		it, err := q.Get(ctx, b.ID)
		if err != nil || it.Held {
			continue // finished and removed, or held
		}
		for _, r := range it.Recipients {
			if r.State == queue.Pending && r.LastAttempt.Before(start) && (rcpt == "" || r.Addr == rcpt) {
				return false
			}
		}
	}
	return true
}

func sender(it queue.Item) string {
	if it.From == "" {
		return "<>"
	}
	return it.From
}

// recipientSummary counts recipients by state: "2 pending, 1 delivered".
func recipientSummary(it queue.Item) string {
	n := map[queue.State]int{}
	for _, r := range it.Recipients {
		n[r.State]++
	}
	var parts []string
	for _, s := range []queue.State{queue.Pending, queue.Delivered, queue.Failed} {
		if n[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[s], s))
		}
	}
	return strings.Join(parts, ", ")
}

// hasPending reports whether a recipient of it is still to be tried.
func hasPending(it queue.Item) bool {
	for _, r := range it.Recipients {
		if r.State == queue.Pending {
			return true
		}
	}
	return false
}

// nextAttempt is an item's next attempt, or "held".
func nextAttempt(it queue.Item) string {
	if it.Held {
		return "held"
	}
	return formatWhen(it.NextAttempt)
}

func formatWhen(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// printJSON writes v as indented JSON, for scripts.
func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
