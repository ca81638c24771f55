package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmaild/vmaild/userdb"
)

// pairMap is a directory map of SOURCE → TARGET pairs that the command line
// manages with add, del and list: aliases (source → destination) and sender
// grants (address → login). Its commands read their arguments, print and
// fail the same way for every map, so only what differs is named here.
type pairMap struct {
	// source and target name the arguments in the usage lines and head
	// the columns of list.
	source, target                string
	addShort, delShort, listShort string
	// checkTarget returns the canonical form of a TARGET given to add, or
	// why it may not be added; nil accepts any valid address.
	checkTarget func(ctx context.Context, dir *directory, target string) (string, error)
	add         func(ctx context.Context, dir *directory, source, target string) error
	// del deletes one pair, or every pair of source when target is "".
	del  func(ctx context.Context, dir *directory, source, target string) error
	list func(ctx context.Context, dir *directory, domain string) ([]pair, error)
	// added and deleted are the lines printed for each pair changed;
	// deleted gets target "" when every pair of source went.
	added, deleted func(source, target string) string
	// warn, when set, says after a successful add what the admin may not
	// have meant (a target that does not exist yet); "" is no warning.
	warn func(ctx context.Context, dir *directory, source, target string) string
}

// pair is one row of a pairMap.
type pair struct{ source, target string }

// pairCommands are the add, del and list commands of m.
func (a *app) pairCommands(m pairMap) (add, del, list *cobra.Command) {
	add = &cobra.Command{
		Use:   "add " + m.source + " " + m.target + "...",
		Short: m.addShort,
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, _, err := userdb.MapKey(args[0])
			if err != nil {
				return badArg(cmd, err)
			}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				for _, t := range args[1:] {
					var target string
					var err error
					if m.checkTarget != nil {
						target, err = m.checkTarget(ctx, dir, t)
					} else {
						target, err = userdb.Canonical(t)
					}
					if err != nil {
						return err
					}
					if err := m.add(ctx, dir, src, target); err != nil {
						return explain(err, src+" → "+target, cmd.Parent().Name()+" list")
					}
					fmt.Fprintln(cmd.OutOrStdout(), m.added(src, target))
					if m.warn != nil {
						if w := m.warn(ctx, dir, src, target); w != "" {
							fmt.Fprintln(cmd.ErrOrStderr(), "warning: "+w)
						}
					}
				}
				return nil
			})
		},
	}
	del = &cobra.Command{
		Use:   "del " + m.source + " [" + m.target + "]",
		Short: m.delShort,
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, _, err := userdb.MapKey(args[0])
			if err != nil {
				return badArg(cmd, err)
			}
			target := ""
			if len(args) == 2 {
				if target, err = userdb.Canonical(args[1]); err != nil {
					return err
				}
			}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				if err := m.del(ctx, dir, src, target); err != nil {
					what := src
					if target != "" {
						what += " → " + target
					}
					return explain(err, what, cmd.Parent().Name()+" list")
				}
				fmt.Fprintln(cmd.OutOrStdout(), m.deleted(src, target))
				return nil
			})
		},
	}
	var asJSON *bool
	list = &cobra.Command{
		Use:   "list [DOMAIN]",
		Short: m.listShort,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			domain, err := domainArg(args)
			if err != nil {
				return err
			}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				ps, err := m.list(ctx, dir, domain)
				if err != nil {
					return err
				}
				if *asJSON {
					// {"source": …, "destination": …} for aliases,
					// named as the usage line names the arguments.
					rows := make([]map[string]string, 0, len(ps))
					for _, p := range ps {
						rows = append(rows, map[string]string{strings.ToLower(m.source): p.source, strings.ToLower(m.target): p.target})
					}
					return printJSON(cmd.OutOrStdout(), rows)
				}
				w := table(cmd.OutOrStdout())
				fmt.Fprintf(w, "%s\t%s\n", m.source, m.target)
				for _, p := range ps {
					fmt.Fprintf(w, "%s\t%s\n", p.source, p.target)
				}
				return w.Flush()
			})
		},
	}
	asJSON = jsonFlag(list)
	return add, del, list
}
