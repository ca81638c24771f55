package main

import (
	"context"
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
// one an admin deleted.

func (a *app) queueCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "queue", Short: "List, show, flush and delete outbound messages"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List queued messages and the state of their recipients (also while serve runs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			items, err := a.inspectQueue(cmd.Context())
			w := table(cmd.OutOrStdout())
			fmt.Fprintln(w, "ID\tSIZE\tQUEUED\tFROM\tRECIPIENTS\tNEXT ATTEMPT")
			for _, it := range items {
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", it.ID, it.Size, it.Created.Format(time.RFC3339),
					sender(it), recipientSummary(it), formatWhen(it.NextAttempt))
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
			return a.showQueued(cmd.Context(), cmd.OutOrStdout(), args[0])
		},
	}
	var timeout time.Duration
	flush := &cobra.Command{
		Use:   "flush [ID]",
		Short: "Attempt delivery of every pending recipient now (of one message, or all), in the foreground",
		Long: "Runs the queue in this process, as `sendmail -q` does: every pending recipient\n" +
			"(of message ID, or of every message) is attempted now, retry times ignored, and the\n" +
			"command returns when each has been tried once; other messages that are due go out\n" +
			"too, as the server would send them. It needs the spool to itself, so it\n" +
			"refuses while `vmaild serve` runs; a running server retries by its own schedule.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return a.flushQueue(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), id)
		},
	}
	flush.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up waiting for the attempts after this long")
	del := &cobra.Command{
		Use:   "delete ID...",
		Short: "Remove messages from the queue without bouncing them",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			q, err := a.ownQueue("delete", nil)
			if err != nil {
				return err
			}
			defer q.Shutdown(context.WithoutCancel(ctx))
			for _, id := range args {
				if err := q.Delete(ctx, id); err != nil {
					return fmt.Errorf("queue delete: %w", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", id)
			}
			return nil
		},
	}
	cmd.AddCommand(list, show, flush, del)
	return cmd
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
	if c.Smarthost.Address != "" {
		qc.Smarthost = &queue.Smarthost{Addr: c.Smarthost.Address, Username: c.Smarthost.Username,
			Password: c.Smarthost.Password, ImplicitTLS: c.Smarthost.ImplicitTLS}
	}
	if edit != nil {
		edit(&qc)
	}
	q, err := queue.New(qc)
	if errors.Is(err, queue.ErrLocked) {
		return nil, fmt.Errorf("queue %s: the spool %s is in use by a running `vmaild serve` (or another queue command); "+
			"only its owner may change it: stop the server to %s, or let it retry on its own schedule", what, c.Dir, what)
	}
	if err != nil {
		return nil, fmt.Errorf("queue %s: %w", what, err)
	}
	return q, nil
}

func (a *app) showQueued(ctx context.Context, out io.Writer, id string) error {
	// The envelope and state come from Inspect, which works whether or not
	// the server runs; the message needs the spool's owner.
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
	w := table(out)
	fmt.Fprintf(w, "id:\t%s\n", it.ID)
	fmt.Fprintf(w, "from:\t%s\n", sender(*it))
	fmt.Fprintf(w, "queued:\t%s\n", it.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "size:\t%d bytes\n", it.Size)
	if it.Bounce {
		fmt.Fprintf(w, "bounce:\tyes (a delivery status notification)\n")
	}
	fmt.Fprintf(w, "next attempt:\t%s\n", formatWhen(it.NextAttempt))
	if err := w.Flush(); err != nil {
		return err
	}
	w = table(out)
	fmt.Fprintln(w, "RECIPIENT\tSTATE\tATTEMPTS\tLAST ATTEMPT\tNEXT ATTEMPT\tLAST REPLY")
	for _, r := range it.Recipients {
		next := "-"
		if r.State == queue.Pending {
			next = formatWhen(r.NextAttempt)
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", r.Addr, r.State, r.Attempts, formatWhen(r.LastAttempt), next, r.LastReply)
	}
	if err := w.Flush(); err != nil {
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

// flushQueue runs the queue in this process until every recipient pending
// at the start (of id, or of every item) has been attempted once. Bounces
// to local senders are delivered into the store, as the server does.
func (a *app) flushQueue(ctx context.Context, out, logTo io.Writer, id string) error {
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
	q, err := a.ownQueue("flush", func(c *queue.Config) {
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
			return fmt.Errorf("queue flush: %w", err)
		}
		before = []queue.Item{it}
	}
	start := time.Now()
	if err := q.Start(ctx); err != nil {
		return err
	}
	if err := q.Flush(ctx, id); err != nil {
		return fmt.Errorf("queue flush: %w", err)
	}
	// Flush makes every pending recipient due; it has been tried once its
	// last attempt is newer than start (or it is no longer pending).
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !flushed(ctx, q, before, start) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("queue flush: still delivering: %w", ctx.Err())
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
		default:
			fmt.Fprintf(w, "%s\t%s, next attempt %s\n", b.ID, recipientSummary(it), formatWhen(it.NextAttempt))
		}
	}
	return w.Flush()
}

func flushed(ctx context.Context, q *queue.Queue, items []queue.Item, start time.Time) bool {
	if q.Stats().Running > 0 {
		return false
	}
	for _, b := range items {
		it, err := q.Get(ctx, b.ID)
		if err != nil {
			continue // finished and removed
		}
		for _, r := range it.Recipients {
			if r.State == queue.Pending && r.LastAttempt.Before(start) {
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

func formatWhen(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}
