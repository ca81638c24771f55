package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmaild/vmaild/protocols/control"
	"github.com/vmaild/vmaild/protocols/sendlimit"
	"github.com/vmaild/vmaild/userdb"
)

// SendingLimitsConfig bounds what authenticated users send (package
// protocols/sendlimit), so that a stolen password sends little spam. The
// directory overrides the limits per account (SQL columns accounts.send_*,
// LDAP attributes vmailSend*) and per domain (domains.send_*).
type SendingLimitsConfig struct {
	Account    sendlimit.Limits `yaml:"account"`
	Domain     sendlimit.Limits `yaml:"domain"`
	MaxEntries int              `yaml:"max_entries" help:"accounts and domains counted in memory; when full, idle ones are forgotten first"`
	// Near is the default threshold of `vmaild limits`.
	Near float64 `yaml:"near" help:"share of an hourly limit from which vmaild limits lists an account or domain (0.8: 80%)"`
}

// defaultSendingLimits leave ordinary users, and mailing a list from a
// mail client, well inside, and stop a script sending with a stolen
// password within minutes. Domains are not limited by default: their
// sizes differ too much.
func defaultSendingLimits() SendingLimitsConfig {
	return SendingLimitsConfig{
		Account:    sendlimit.Limits{MessagesPerHour: 500, RecipientsPerHour: 2000},
		MaxEntries: sendlimit.DefaultMaxEntries,
		Near:       0.8,
	}
}

func (c SendingLimitsConfig) validate() []string {
	var problems []string
	for _, l := range []struct {
		name string
		v    int64
	}{
		{"account.messages_per_hour", c.Account.MessagesPerHour},
		{"account.recipients_per_message", c.Account.RecipientsPerMessage},
		{"account.recipients_per_hour", c.Account.RecipientsPerHour},
		{"domain.messages_per_hour", c.Domain.MessagesPerHour},
		{"domain.recipients_per_message", c.Domain.RecipientsPerMessage},
		{"domain.recipients_per_hour", c.Domain.RecipientsPerHour},
	} {
		if l.v < 0 {
			problems = append(problems, fmt.Sprintf("sending_limits.%s: %d is negative (0: unlimited)", l.name, l.v))
		}
	}
	if c.Near < 0 || c.Near > 1 {
		problems = append(problems, fmt.Sprintf("sending_limits.near: %v is not a share from 0 to 1", c.Near))
	}
	return problems
}

// openSendLimits makes the limiter every SMTP listener shares.
func (s *server) openSendLimits() *sendlimit.Limiter {
	c := s.cfg.SendingLimits
	return sendlimit.New(sendlimit.Config{
		Account: c.Account, Domain: c.Domain, MaxEntries: c.MaxEntries,
		Lookup:  s.dir.users.SendLimits,
		Refused: s.metrics.sendLimitRefused,
	})
}

// Control operation of `vmaild limits`.
const opLimits = "limits"

type limitsRequest struct {
	// Near is the share of a limit from which a key is listed.
	Near float64 `json:"near"`
}

type limitsAnswer struct {
	Near    float64           `json:"near"`
	Senders []sendlimit.Usage `json:"senders"`
}

func (s *server) registerLimits() {
	s.ctl.srv.Handle(opLimits, func(ctx context.Context, _ control.Peer, raw json.RawMessage) (any, error) {
		req, err := decode[limitsRequest](raw)
		if err != nil {
			return nil, err
		}
		senders := s.sendLimits.Near(req.Near)
		if senders == nil {
			senders = []sendlimit.Usage{}
		}
		return limitsAnswer{Near: req.Near, Senders: senders}, nil
	})
}

// limitsCommand shows who is near a sending limit in the running server.
func (a *app) limitsCommand() *cobra.Command {
	var asJSON, all bool
	var near float64
	cmd := &cobra.Command{
		Use:   "limits",
		Short: "Show the accounts and domains near their sending limit in the running server",
		Long: "Lists every account and domain (@domain) whose count of the last hour is at least\n" +
			"--near (default sending_limits.near) of its messages or recipients per hour, the\n" +
			"fullest first; --all lists every one that sent in the last hour.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			req := limitsRequest{Near: a.cfg.SendingLimits.Near}
			if cmd.Flags().Changed("near") {
				req.Near = near
			}
			if all {
				req.Near = 0
			}
			var ans limitsAnswer
			ran, err := a.callDaemon(cmd.Context(), opLimits, req, &ans)
			switch {
			case !ran:
				return notRunning{a.cfg.Control.Socket}
			case err != nil:
				return fmt.Errorf("limits: %w", err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, ans)
			}
			if len(ans.Senders) == 0 {
				fmt.Fprintf(out, "nobody at %.0f%% of a sending limit or more\n", ans.Near*100)
				return nil
			}
			w := table(out)
			fmt.Fprintln(w, "SENDER\tMESSAGES\tRECIPIENTS\tUSED\tLIMITS FROM")
			for _, u := range ans.Senders {
				from := "config"
				if u.Overridden {
					from = "directory"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%.0f%%\t%s\n", u.Key, ofLimit(u.Messages, u.MessagesPerHour),
					ofLimit(u.Recipients, u.RecipientsPerHour), u.Fraction*100, from)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	cmd.Flags().BoolVar(&all, "all", false, "list everyone who sent in the last hour")
	cmd.Flags().Float64Var(&near, "near", 0, "list from this share of a limit (0.8: 80%; default sending_limits.near)")
	cmd.AddCommand(a.limitsSetCommand(), a.limitsShowCommand())
	return cmd
}

// limitsSetCommand writes an account's or a domain's limits into the SQL
// directory (LDAP accounts keep theirs in vmailSend* attributes).
func (a *app) limitsSetCommand() *cobra.Command {
	var perHour, perMessage, rcptsPerHour int64
	var inherit bool
	cmd := &cobra.Command{
		Use:   "set ADDRESS|DOMAIN",
		Short: "Set the sending limits of an account or a domain in SQL (0 = unlimited); limits not given go back to sending_limits.*",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			var l userdb.SendLimits
			for _, o := range []struct {
				flag string
				v    *int64
				dst  **int64
			}{
				{"messages-per-hour", &perHour, &l.MessagesPerHour},
				{"recipients-per-message", &perMessage, &l.RecipientsPerMessage},
				{"recipients-per-hour", &rcptsPerHour, &l.RecipientsPerHour},
			} {
				if f.Changed(o.flag) {
					if *o.v < 0 {
						return badArg(cmd, fmt.Errorf("--%s %d: negative (0 is unlimited)", o.flag, *o.v))
					}
					*o.dst = o.v
				}
			}
			if l == (userdb.SendLimits{}) && !inherit {
				return badArg(cmd, errors.New("give --messages-per-hour, --recipients-per-message or --recipients-per-hour, or --inherit"))
			}
			target := args[0]
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				if err := dir.sql.SetSendLimits(ctx, target, l); err != nil {
					if strings.Contains(target, "@") && dir.ldap != nil {
						return fmt.Errorf("%w (accounts are in LDAP: set their %s attributes there)", err, "vmailSend*")
					}
					return explain(err, target, "user list` or `vmaild domain list")
				}
				fmt.Fprintf(cmd.OutOrStdout(), "sending limits of %s: %s (a running server reads them within a minute)\n", target, formatSendLimits(l))
				return nil
			})
		},
	}
	cmd.Flags().Int64Var(&perHour, "messages-per-hour", 0, "messages per hour")
	cmd.Flags().Int64Var(&perMessage, "recipients-per-message", 0, "recipients of one message")
	cmd.Flags().Int64Var(&rcptsPerHour, "recipients-per-hour", 0, "recipients per hour")
	cmd.Flags().BoolVar(&inherit, "inherit", false, "every limit back to sending_limits.*")
	return cmd
}

// formatSendLimits names the limits set, "defaults" when none is.
func formatSendLimits(l userdb.SendLimits) string {
	var parts []string
	for _, o := range []struct {
		name string
		v    *int64
	}{{"messages/hour", l.MessagesPerHour}, {"recipients/message", l.RecipientsPerMessage}, {"recipients/hour", l.RecipientsPerHour}} {
		switch {
		case o.v == nil:
		case *o.v == 0:
			parts = append(parts, o.name+" unlimited")
		default:
			parts = append(parts, fmt.Sprintf("%s %d", o.name, *o.v))
		}
	}
	if len(parts) == 0 {
		return "the defaults (sending_limits.*)"
	}
	return strings.Join(parts, ", ") + "; the rest from sending_limits.*"
}

// limitsShowRow is one line of `vmaild limits show`.
type limitsShowRow struct {
	Key    string           `json:"key"`
	Limits sendlimit.Limits `json:"limits"`
	// From says, per limit, "directory" or "config".
	From map[string]string `json:"from"`
}

// limitsShowCommand prints the limits in force for an account and its
// domain: the directory's overrides (SQL or LDAP) over the defaults.
func (a *app) limitsShowCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ADDRESS",
		Short: "Show the sending limits in force for an account and its domain, and where each comes from",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr, err := userdb.Canonical(args[0])
			if err != nil {
				return badArg(cmd, err)
			}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				acct, dom, err := dir.users.SendLimits(ctx, addr)
				if err != nil {
					return explain(err, "user "+addr, "user list")
				}
				_, domain, _ := userdb.Split(addr)
				c := a.cfg.SendingLimits
				rows := []limitsShowRow{effective(addr, c.Account, acct), effective("@"+domain, c.Domain, dom)}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), rows)
				}
				w := table(cmd.OutOrStdout())
				fmt.Fprintln(w, "SENDER\tMESSAGES/HOUR\tRECIPIENTS/MESSAGE\tRECIPIENTS/HOUR")
				for _, r := range rows {
					cell := func(name string, v int64) string {
						s := "unlimited"
						if v > 0 {
							s = strconv.FormatInt(v, 10)
						}
						return s + " (" + r.From[name] + ")"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Key, cell(sendlimit.MessagesPerHour, r.Limits.MessagesPerHour),
						cell(sendlimit.RecipientsPerMessage, r.Limits.RecipientsPerMessage), cell(sendlimit.RecipientsPerHour, r.Limits.RecipientsPerHour))
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// effective is the limits the limiter applies (sendlimit.Limits.With),
// and where each comes from.
func effective(key string, def sendlimit.Limits, o userdb.SendLimits) limitsShowRow {
	from := func(v *int64) string {
		if v != nil {
			return "directory"
		}
		return "config"
	}
	return limitsShowRow{Key: key, Limits: def.With(o), From: map[string]string{
		sendlimit.MessagesPerHour:      from(o.MessagesPerHour),
		sendlimit.RecipientsPerMessage: from(o.RecipientsPerMessage),
		sendlimit.RecipientsPerHour:    from(o.RecipientsPerHour),
	}}
}

// ofLimit is "12/500", or "12" when unlimited.
func ofLimit(n, limit int64) string {
	if limit <= 0 {
		return strconv.FormatInt(n, 10)
	}
	return strconv.FormatInt(n, 10) + "/" + strconv.FormatInt(limit, 10)
}
