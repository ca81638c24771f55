package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) configCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check, show and list the configuration"}
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration and reach every configured server, writing nothing",
		Long: "Loads the configuration (file, VMAILD_* variables, flags) and reports every problem in\n" +
			"one run: unknown keys, values of the wrong shape or out of range, and each configured\n" +
			"server (SQL, every LDAP URL, the smarthost, the DNS resolver) that cannot be reached.\n" +
			"It creates nothing: no data folder, no database file.",
		Args:        cobra.NoArgs,
		Annotations: map[string]string{"noconfig": "yes"},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.load(cmd)
			var problems []string
			var ce *configError
			switch {
			case errors.As(err, &ce):
				problems = ce.problems
			case err != nil:
				return err // no file, or not YAML: nothing more to check
			}
			out := cmd.OutOrStdout()
			if len(problems) == 0 {
				fmt.Fprintln(out, "configuration: ok")
			}
			ctx := cmd.Context()
			for _, r := range checkServers(ctx, cfg, problems) {
				if r.err != nil {
					problems = append(problems, r.err.Error())
				} else {
					fmt.Fprintf(out, "%s: %s\n", r.name, r.ok)
				}
			}
			if len(problems) > 0 {
				return fmt.Errorf("%d problem(s):\n  %s", len(problems), strings.Join(problems, "\n  "))
			}
			return nil
		},
	}
	var changedOnly, asJSON, keysJSON bool
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration, secrets masked",
		Long: "Prints every key with the value vmaild uses after the file, VMAILD_* variables and\n" +
			"flags, one `key: value` a line; passwords, SRS secrets and the password in a DSN\n" +
			"are masked. With -n only the keys that differ from the defaults (like postconf -n).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return showConfig(cmd.OutOrStdout(), a.cfg, changedOnly, asJSON)
		},
	}
	show.Flags().BoolVarP(&changedOnly, "changed", "n", false, "only the keys that differ from the defaults")
	show.Flags().BoolVar(&asJSON, "json", false, "one JSON object of key: value")
	keys := &cobra.Command{
		Use:   "keys",
		Short: "List every configuration key with its default and environment variable",
		Args:  cobra.NoArgs,
		Annotations: map[string]string{
			"noconfig": "yes",
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if keysJSON {
				type row struct {
					Key         string `json:"key"`
					Environment string `json:"environment"`
					Type        string `json:"type"`
					Default     any    `json:"default"`
					Meaning     string `json:"meaning"`
				}
				var rows []row
				for _, k := range configKeys(defaultConfig()) {
					rows = append(rows, row{k.Name, k.Env, keyType(k), jsonValue(k, k.Default), k.Help})
				}
				return printJSON(cmd.OutOrStdout(), rows)
			}
			w := table(cmd.OutOrStdout())
			fmt.Fprintln(w, "KEY\tENVIRONMENT\tDEFAULT\tMEANING")
			for _, k := range configKeys(defaultConfig()) {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", k.Name, k.Env, formatKeyValue(k, k.Default), k.Help)
			}
			return w.Flush()
		},
	}
	keys.Flags().BoolVar(&keysJSON, "json", false, "print a JSON list")
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
	cmd.AddCommand(check, show, keys, reference)
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
