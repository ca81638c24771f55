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
		if err.Error() != "" { // "": the command said everything already
			fmt.Fprintln(os.Stderr, "vmaild:", err)
		}
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
	// systemConfig is systemConfigPath; tests point it elsewhere.
	systemConfig string
	cfg          Config
}

// load reads the configuration a command runs with. On problems it
// returns them (a *configError) with the configuration as far as it could
// be read.
// It says on standard error which file it read, or that it runs on the
// built-in defaults.
func (a *app) load(cmd *cobra.Command) (Config, error) {
	src, err := findConfig(a.configPath, a.systemConfig)
	if err != nil {
		return Config{}, err
	}
	cfg, err := loadConfig(src.path, cmd.Flags())
	fmt.Fprintln(cmd.ErrOrStderr(), src.describe(cfg))
	return cfg, err
}

func newRootCommand() *cobra.Command {
	return newRoot(&app{systemConfig: systemConfigPath})
}

func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "vmaild",
		Version:       buildVersion().String(),
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
	root.PersistentFlags().StringVarP(&a.configPath, "config", "c", "", "YAML configuration file (default: $VMAILD_CONFIG, else "+systemConfigPath+", else built-in defaults)")
	addConfigFlags(root.PersistentFlags())
	root.AddCommand(a.controlCommands()...)
	root.AddCommand(
		a.serveCommand(),
		a.configCommand(),
		a.dbCommand(),
		a.hashPasswordCommand(),
		a.domainCommand(),
		a.userCommand(),
		a.aliasCommand(),
		a.senderCommand(),
		a.dkimCommand(),
		a.limitsCommand(),
		a.dnsCommand(),
		a.sieveCommand(),
		a.quotaCommand(),
		a.ldifCommand(),
		a.benchCommand(),
		a.queueCommand(),
		a.authCommand(),
		a.lookupCommand(),
		versionCommand(),
	)
	root.SetVersionTemplate("vmaild {{.Version}}\n")
	enforceUsage(root)
	return root
}
