package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmaild/vmaild/protocols/bridge"
	"github.com/vmaild/vmaild/protocols/login"
)

// The auth bridge (protocols/bridge) lets a Postfix or Exim in front use
// vmaild's directory: its four sockets are listeners like the others,
// bound before privileges are dropped (a unix socket is given its owner
// then), and `vmaild auth test` and `vmaild lookup` print what they
// answer.

// BridgeListener is one socket of the auth bridge, with the ownership
// Dovecot's unix_listener has.
type BridgeListener struct {
	Address string `yaml:"address" help:"unix socket path, or a loopback host:port (127.0.0.1, ::1 only); empty: off"`
	User    string `yaml:"user" help:"owner of the unix socket, a name or number (Postfix's daemons run as postfix); empty: vmaild's user"`
	Group   string `yaml:"group" help:"group of the unix socket, a name or number; empty: vmaild's group"`
	Mode    string `yaml:"mode" help:"file mode of the unix socket, octal (0660: owner and group may connect; 0666: everyone)"`
}

// BridgeConfig is what the bridge's protocols answer, and their bounds.
type BridgeConfig struct {
	Timeout             time.Duration `yaml:"timeout" help:"how long a bridge client may take to send a request, or stay silent between requests, before it is closed"`
	MaxConnections      int           `yaml:"max_connections" help:"connections each bridge socket serves at once; more wait in the listen queue"`
	OverQuotaAction     string        `yaml:"over_quota_action" help:"policy service answer for a recipient whose mailboxes are all full (a Postfix access(5) action: DEFER_IF_PERMIT …, 452 4.2.2 …, 552 5.2.2 …)"`
	DirectoryDownAction string        `yaml:"directory_down_action" help:"policy service answer when the directory does not answer; empty: 451 4.3.0 Directory temporarily unavailable, try again later"`
	DovecotFailTemp     bool          `yaml:"dovecot_fail_temp" help:"answer a temporary failure on dovecot_auth with FAIL and the temp flag (Exim reads it) instead of closing the connection (Postfix reads any FAIL as 535, a lost connection as 454)"`
}

func defaultBridgeListener() BridgeListener { return BridgeListener{Mode: "0660"} }

func defaultBridgeConfig() BridgeConfig {
	return BridgeConfig{Timeout: bridge.DefaultTimeout, MaxConnections: bridge.DefaultMaxConns, OverQuotaAction: bridge.DefaultOverQuotaAction}
}

// bridgeSpecs names the bridge's listeners, with the protocol each serves.
func (c *Config) bridgeSpecs() []struct {
	name string
	l    BridgeListener
} {
	l := c.Listen
	return []struct {
		name string
		l    BridgeListener
	}{{"dovecot_auth", l.DovecotAuth}, {"saslauthd", l.Saslauthd}, {"policy", l.Policy}, {"socketmap", l.Socketmap}}
}

// socket is the listener's bridge.Socket; the mode is checked.
func (l BridgeListener) socket() (bridge.Socket, error) {
	s := bridge.Socket{Address: l.Address, User: l.User, Group: l.Group}
	if l.Mode == "" {
		return s, nil
	}
	// Modes are written octal (0660); unquoted in YAML, 0660 arrives as
	// its decimal value (432), with no leading zero.
	base := 10
	if strings.HasPrefix(l.Mode, "0") {
		base = 8
	}
	if m, err := strconv.ParseUint(l.Mode, base, 32); err == nil && m <= 0o777 {
		s.Mode = os.FileMode(m)
		return s, nil
	}
	return s, fmt.Errorf("mode %q is not an octal file mode like 0660", l.Mode)
}

// validateBridge checks the bridge's listeners and answers.
func (c *Config) validateBridge() []string {
	var problems []string
	for _, sp := range c.bridgeSpecs() {
		if sp.l.Address == "" {
			continue
		}
		s, err := sp.l.socket()
		if err == nil {
			err = s.Check()
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("listen.%s: %v", sp.name, err))
		}
		if s.IsUnix() && len(s.Address) > maxSocketPath {
			problems = append(problems, fmt.Sprintf("listen.%s.address: %q is longer than a unix socket path may be (%d)", sp.name, s.Address, maxSocketPath))
		}
	}
	if c.Bridge.Timeout < 0 || c.Bridge.MaxConnections < 0 {
		problems = append(problems, "bridge: timeout and max_connections may not be negative")
	}
	for key, action := range map[string]string{"over_quota_action": c.Bridge.OverQuotaAction, "directory_down_action": c.Bridge.DirectoryDownAction} {
		if strings.ContainsAny(action, "\r\n") {
			problems = append(problems, "bridge."+key+": one line only")
		}
	}
	return problems
}

// bindBridges opens the bridge's sockets, as root when started so, so a
// unix socket can be given to the postfix user.
func (s *server) bindBridges() error {
	for _, sp := range s.cfg.bridgeSpecs() {
		if sp.l.Address == "" {
			continue
		}
		sock, err := sp.l.socket()
		if err != nil {
			return fmt.Errorf("listen.%s: %w", sp.name, err)
		}
		ln, err := bridge.Listen(sock)
		if err != nil {
			return fmt.Errorf("listen %s on %s: %w", sp.name, sp.l.Address, err)
		}
		s.bound[sp.name] = ln
	}
	return nil
}

// bridgeAnswers is what every bridge socket answers from: the daemon's
// directory, delivery agent and login service.
func (s *server) bridgeAnswers() *bridge.Answers {
	return &bridge.Answers{Directory: s.dir.users, Agent: s.agentI, Logins: s.logins}
}

// startBridges serves each bound bridge socket.
func (s *server) startBridges() {
	answers := s.bridgeAnswers()
	b := s.cfg.Bridge
	for _, sp := range s.cfg.bridgeSpecs() {
		ln, ok := s.bound[sp.name]
		if !ok {
			continue
		}
		var p bridge.Protocol
		switch sp.name {
		case "dovecot_auth":
			p = &bridge.Dovecot{Answers: answers, FailTemp: b.DovecotFailTemp}
		case "saslauthd":
			p = &bridge.Saslauthd{Answers: answers}
		case "policy":
			p = &bridge.Policy{Answers: answers, OverQuota: b.OverQuotaAction, DirectoryDown: b.DirectoryDownAction}
		case "socketmap":
			p = &bridge.Socketmap{Answers: answers}
		}
		log := s.log.With("listener", sp.name)
		srv := &bridge.Server{Protocol: p, Timeout: b.Timeout, MaxConns: b.MaxConnections, Logger: log}
		s.bridges = append(s.bridges, srv)
		ln = s.metrics.listener(sp.name, ln)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, bridge.ErrServerClosed) {
				s.serveErr <- fmt.Errorf("%s: %w", sp.name, err)
			}
		}()
		log.Info("listening", "address", ln.Addr().String())
	}
}

// shutdownBridges stops the bridge's sockets; their clients (Postfix)
// reconnect to the next vmaild.
func (s *server) shutdownBridges(ctx context.Context) {
	for _, b := range s.bridges {
		if err := b.Shutdown(ctx); err != nil {
			s.log.Warn("bridge shutdown", "err", err)
		}
	}
	for _, sp := range s.cfg.bridgeSpecs() {
		if strings.HasPrefix(sp.l.Address, "/") {
			os.Remove(sp.l.Address)
		}
	}
}

// authCommand is `vmaild auth test`: doveadm auth test for the bridge.
func (a *app) authCommand() *cobra.Command {
	auth := &cobra.Command{Use: "auth", Short: "Check logins as the auth bridge answers them"}
	var client string
	test := &cobra.Command{
		Use:   "test LOGIN",
		Short: "Check LOGIN's password (read from standard input) through the login service, as the dovecot_auth and saslauthd sockets would",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ip netip.Addr
			if client != "" {
				var err error
				if ip, err = netip.ParseAddr(client); err != nil {
					return badArg(cmd, fmt.Errorf("--client: %w", err))
				}
			}
			line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			pw := strings.TrimRight(line, "\r\n")
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				lc := a.cfg.Login
				lc.Networks = a.cfg.ClientNetworks
				lc.Canonical = dir.users.LoginAddress
				lc.DummyScheme = a.cfg.UserDB.PasswordScheme
				logins, err := login.New(lc)
				if err != nil {
					return err
				}
				answers := &bridge.Answers{Directory: dir.users, Logins: logins}
				acct, err := answers.Authenticate(ctx, ip, args[0], pw)
				out := cmd.OutOrStdout()
				switch {
				case err == nil:
					fmt.Fprintf(out, "auth succeeded: user=%s\n", acct.Address)
					return nil
				case bridge.Temporary(err):
					fmt.Fprintf(out, "auth unavailable (try later): %v\n", err)
					return exitStatus{75, "temporary failure"}
				}
				fmt.Fprintf(out, "auth failed: %v\n", err)
				return exitStatus{1, "authentication failed"}
			})
		},
	}
	test.Flags().StringVar(&client, "client", "", "client address the attempt is counted against (Postfix's rip=)")
	auth.AddCommand(test)
	return auth
}

// lookupCommand is `vmaild lookup`: postmap -q for the socketmap tables.
func (a *app) lookupCommand() *cobra.Command {
	var names []string
	for _, t := range bridge.Tables {
		names = append(names, string(t))
	}
	return &cobra.Command{
		Use:   "lookup TABLE KEY",
		Short: "Look KEY up as the socketmap socket answers Postfix; TABLE is one of " + strings.Join(names, ", "),
		Long: "Look KEY up as the socketmap socket answers Postfix, like postmap -q: the value is printed " +
			"(exit 0); not found prints nothing (exit 1); a directory failure exits 75.\nTABLE: " + strings.Join(names, ", "),
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(bridge.Tables, bridge.Table(args[0])) {
				return badArg(cmd, fmt.Errorf("no table %q: one of %s", args[0], strings.Join(names, ", ")))
			}
			return a.withDirectory(cmd, func(ctx context.Context, dir *directory) error {
				r := (&bridge.Answers{Directory: dir.users}).Lookup(ctx, bridge.Table(args[0]), args[1])
				switch r.Status {
				case bridge.Found:
					fmt.Fprintln(cmd.OutOrStdout(), r.Value)
					return nil
				case bridge.NotFound:
					return exitStatus{1, ""}
				case bridge.TempFail:
					return exitStatus{75, r.Value}
				}
				return exitStatus{1, r.Value}
			})
		},
	}
}

// exitStatus ends a command with a status a script tests, like postmap's
// and doveadm's; msg "" prints nothing.
type exitStatus struct {
	code int
	msg  string
}

func (e exitStatus) Error() string { return e.msg }
func (e exitStatus) ExitCode() int { return e.code }
