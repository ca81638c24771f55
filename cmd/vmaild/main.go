// Command vmaild is the vmaild mail server and its admin tool: `vmaild
// serve` runs every listener; the other commands manage domains, users,
// aliases, quotas, the database schema and the queue through the same
// configuration the server uses.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmaild:", err)
		var ec exitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

type exitCoder interface{ ExitCode() int }

// app carries what every command needs: the loaded configuration.
type app struct {
	configPath string
	cfg        Config
}

// load reads the configuration a command runs with. On problems it
// returns them (a *configError) with the configuration as far as it could
// be read.
func (a *app) load(cmd *cobra.Command) (Config, error) {
	path := a.configPath
	if path == "" {
		path = os.Getenv("VMAILD_CONFIG")
	}
	return loadConfig(path, cmd.Flags())
}

func newRootCommand() *cobra.Command {
	a := &app{}
	root := &cobra.Command{
		Use:           "vmaild",
		Short:         "Mail for virtual users: SMTP, submission, LMTP, IMAP and POP3 in one daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Annotations["noconfig"] != "" {
				return nil
			}
			cfg, err := a.load(cmd)
			if err != nil {
				return err
			}
			a.cfg = cfg
			return nil
		},
	}
	root.PersistentFlags().StringVarP(&a.configPath, "config", "c", "", "YAML configuration file (default: $VMAILD_CONFIG, else built-in defaults)")
	addConfigFlags(root.PersistentFlags())
	root.AddCommand(
		a.serveCommand(),
		a.configCommand(),
		a.dbCommand(),
		a.hashPasswordCommand(),
		a.domainCommand(),
		a.userCommand(),
		a.aliasCommand(),
		a.senderCommand(),
		a.quotaCommand(),
		a.ldifCommand(),
		a.benchCommand(),
		a.queueCommand(),
	)
	return root
}
