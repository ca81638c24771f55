package main

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmaild/vmaild/protocols/smtp/smtpbench"
)

func (a *app) benchCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "Load generators for measuring a running server"}
	var o smtpbench.Options
	var to, user string
	var starttls, implicit, stdin bool
	smtpCmd := &cobra.Command{
		Use:   "smtp",
		Short: "Send N messages over C concurrent connections and report messages/s and latency percentiles",
		Args:  cobra.NoArgs,
		Annotations: map[string]string{
			"noconfig": "yes",
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.To = strings.Split(to, ",")
			if starttls || implicit {
				// A benchmark measures our own server, often with its
				// self-signed certificate.
				o.TLS = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
				o.ImplicitTLS = implicit
			}
			if user != "" {
				pw, err := readPassword(cmd, stdin)
				if err != nil {
					return err
				}
				o.Auth = &smtpbench.Auth{Username: user, Password: pw}
			}
			res, err := smtpbench.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%d messages accepted, %d failed in %v\n", res.Messages, res.Errors, res.Duration.Round(1e6))
			fmt.Fprintf(out, "%.1f messages/s; latency p50 %v, p90 %v, p99 %v\n", res.PerSecond, res.P50, res.P90, res.P99)
			if res.FirstError != nil {
				fmt.Fprintf(out, "first error: %v\n", res.FirstError)
			}
			return nil
		},
	}
	f := smtpCmd.Flags()
	f.StringVar(&o.Addr, "server", "127.0.0.1:2525", "host:port to send to")
	f.StringVar(&o.From, "from", "bench@example.net", "envelope sender")
	f.StringVar(&to, "to", "", "recipients, comma-separated (required)")
	f.IntVarP(&o.Count, "count", "n", 1000, "messages to send")
	f.IntVarP(&o.Concurrency, "concurrency", "C", 8, "concurrent connections")
	f.IntVar(&o.Size, "size", 10240, "message size in bytes")
	f.BoolVar(&starttls, "starttls", false, "use STARTTLS")
	f.BoolVar(&implicit, "tls", false, "use implicit TLS (port 465)")
	f.StringVar(&user, "auth-user", "", "authenticate as this user (password from a prompt or --password-stdin)")
	f.BoolVar(&stdin, "password-stdin", false, "read the AUTH password from standard input")
	smtpCmd.MarkFlagRequired("to")
	cmd.AddCommand(smtpCmd)
	return cmd
}
