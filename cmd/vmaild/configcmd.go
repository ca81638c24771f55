package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmaild/vmaild/userdb"
)

func (a *app) configCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check the configuration and list its keys"}
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration and reach every configured server",
		Long: "Loads the configuration (file, VMAILD_* variables, flags), reports unknown keys and\n" +
			"malformed values, then connects to the SQL database and, when accounts come from\n" +
			"LDAP, binds to the directory, naming the server that cannot be reached.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
			defer cancel()
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, "configuration: ok")
			d, err := a.openDirectory(ctx)
			if err != nil {
				return err
			}
			defer d.Close()
			if err := d.sql.Ping(ctx); err != nil {
				return fmt.Errorf("sql (%s) unreachable: %w", a.cfg.SQL.Driver, err)
			}
			fmt.Fprintf(out, "sql (%s): reachable\n", a.cfg.SQL.Driver)
			if d.ldap != nil {
				// A lookup that finds nothing proves the bind and the search work.
				if _, err := d.ldap.LookupAccount(ctx, "postmaster@vmaild.invalid"); err != nil && !errors.Is(err, userdb.ErrNotFound) {
					return fmt.Errorf("ldap %s unreachable: %w", strings.Join(a.cfg.LDAP.URLs, " "), err)
				}
				fmt.Fprintf(out, "ldap %s: reachable\n", strings.Join(a.cfg.LDAP.URLs, " "))
			}
			return nil
		},
	}
	keys := &cobra.Command{
		Use:   "keys",
		Short: "List every configuration key with its default and environment variable",
		Args:  cobra.NoArgs,
		Annotations: map[string]string{
			"noconfig": "yes",
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			w := table(cmd.OutOrStdout())
			fmt.Fprintln(w, "KEY\tENVIRONMENT\tDEFAULT\tMEANING")
			for _, k := range configKeys(defaultConfig()) {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", k.Name, k.Env, formatKeyValue(k, k.Default), k.Help)
			}
			return w.Flush()
		},
	}
	reference := &cobra.Command{
		Use:         "reference",
		Short:       "Print the configuration reference (CONFIG.md)",
		Args:        cobra.NoArgs,
		Hidden:      true,
		Annotations: map[string]string{"noconfig": "yes"},
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), configReference())
			return err
		},
	}
	cmd.AddCommand(check, keys, reference)
	return cmd
}

func (a *app) dbCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "db", Short: "Manage the SQL schema"}
	migrate := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade vmaild's tables (safe to run again)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withDirectory(cmd, func(ctx context.Context, d *directory) error {
				applied, err := d.sql.Migrate(ctx)
				if err != nil {
					return err
				}
				if len(applied) == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "schema is up to date")
				}
				for _, v := range applied {
					fmt.Fprintf(cmd.OutOrStdout(), "applied %s\n", v)
				}
				return nil
			})
		},
	}
	cmd.AddCommand(migrate)
	return cmd
}
