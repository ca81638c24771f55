package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/dkim"
	"github.com/vmaild/vmaild/backend/greylist"
	"github.com/vmaild/vmaild/backend/inbound"
	"github.com/vmaild/vmaild/backend/queue"
	"github.com/vmaild/vmaild/backend/senderauth"
	"github.com/vmaild/vmaild/backend/sieve"
	"github.com/vmaild/vmaild/backend/srs"
	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/backend/vacation"
	"github.com/vmaild/vmaild/protocols/bridge"
	"github.com/vmaild/vmaild/protocols/control"
	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/protocols/imap"
	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/protocols/managesieve"
	"github.com/vmaild/vmaild/protocols/pop3"
	"github.com/vmaild/vmaild/protocols/sendlimit"
	"github.com/vmaild/vmaild/protocols/smtp"
	"github.com/vmaild/vmaild/userdb"
)

func (a *app) serveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the mail server: every configured listener, the delivery agent and the queue",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.serve(cmd.Context(), cmd.OutOrStdout(), rereader(cmd, args, a))
		},
	}
}

// newLogger logs at level, which it sets to cfg.Level; reload changes it.
func newLogger(cfg LogConfig, w io.Writer, level *slog.LevelVar) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(cfg.Level))
	level.Set(l)
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// server is the running daemon.
type server struct {
	cfg        Config
	log        *slog.Logger
	dir        *directory
	store      *store.Store
	queue      *queue.Queue
	agent      *delivery.LocalAgent
	srs        *srs.Rewriter               // forwarded senders and their bounces; nil: srs.enabled off
	dkim       atomic.Pointer[dkim.Signer] // signs submitted mail and bounces; no keys: nothing; swapped by reload
	logins     *login.Service              // shared by every listener
	certs      *certificates
	tls        *tls.Config
	metrics    *metrics
	myNetworks []netip.Prefix
	gate       *gate.Gate // every listener's: one count of each client, one Shutdown
	// directory and agent are what the protocols see: instrumented.
	directory userdb.Directory
	agentI    delivery.Agent
	// pop3Locks is shared by 110 and 995: one maildrop, one session.
	pop3Locks *pop3.Locks
	// sendLimits counts what authenticated users send, across listeners.
	sendLimits *sendlimit.Limiter

	ctl *controlState // the control socket; nil until it is open

	// Inbound checks of the MTA listener (inbound.go); nil or empty: off.
	screens    []smtp.Screen
	greylist   *greylist.Greylister
	senderAuth *senderauth.Checker
	checks     *inbound.Pipeline // end of DATA: sender_auth, then the scanners; nil: none
	bridges    []*bridge.Server  // the auth bridge's sockets being served

	wg       sync.WaitGroup
	bound    map[string]net.Listener
	serveErr chan error
}

func (a *app) serve(ctx context.Context, out io.Writer, reread func() (Config, error)) error {
	cfg := a.cfg
	level := new(slog.LevelVar)
	log := newLogger(cfg.Log, os.Stderr, level)
	s := &server{cfg: cfg, log: log, bound: map[string]net.Listener{}, serveErr: make(chan error, 16), pop3Locks: &pop3.Locks{}}

	// SIGHUP reloads the certificate; caught from the start, so a reload
	// sent while starting never falls to the default action (exit).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// Bind first: privileged ports need root, everything after does not.
	err := s.bindAll()
	if err == nil {
		err = s.bindBridges()
	}
	if err == nil {
		err = s.bindMetrics()
	}
	if err == nil {
		err = s.bindAutoconfig()
	}
	if err == nil {
		err = s.bindMTASTS()
	}
	if err != nil {
		s.closeListeners()
		return err
	}
	if err := dropPrivileges(cfg.RunAs, log); err != nil {
		s.closeListeners()
		return err
	}
	if err := s.open(ctx, a); err != nil {
		s.closeListeners()
		if ctx.Err() != nil {
			// SIGTERM while starting: nothing was accepted yet, a clean stop.
			log.Info("stopped during start-up")
			return nil
		}
		return err
	}
	defer s.dir.Close()
	if err := s.startControl(level, reread); err != nil {
		s.closeListeners()
		s.queue.Shutdown(context.Background())
		return err
	}
	s.startAll()
	s.startBridges()
	if ln, ok := s.bound["metrics"]; ok {
		hs := s.serveMetrics(ln)
		defer hs.Close()
		log.Info("listening", "listener", "metrics", "address", ln.Addr().String())
	}
	if ln, ok := s.bound["autoconfig"]; ok {
		hs := s.serveAutoconfig(ln)
		defer hs.Close()
	}
	if ln, ok := s.bound["mta_sts"]; ok {
		hs := s.serveMTASTS(ln)
		defer hs.Close()
	}
	s.printHint(out)

	for {
		select {
		case <-hup:
			// The same reload as `vmaild reload`; it logs what it did.
			s.reload(control.Peer{UID: -1, GID: -1, PID: -1})
			continue
		case err := <-s.serveErr:
			log.Error("listener failed", "err", err)
			s.shutdown()
			return err
		case <-ctx.Done():
		}
		break
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	return s.shutdown()
}

// open builds the directory, store, queue, agent and TLS.
func (s *server) open(ctx context.Context, a *app) error {
	cfg := s.cfg
	var err error
	s.certs, err = loadCertificates(cfg.TLS, cfg.DataDir, cfg.Hostname, s.log)
	if err != nil {
		return err
	}
	s.tls = s.certs.config()
	s.dir, err = a.openDirectory(ctx)
	if err != nil {
		return err
	}
	if cfg.SQL.Driver == "sqlite" {
		// The embedded default creates its own schema; a MySQL schema is
		// the admin's to apply with `vmaild db migrate`.
		if _, err := s.dir.sql.Migrate(ctx); err != nil {
			return err
		}
	}
	s.dir.users.Quotas = s.dir.sql
	s.store = &store.Store{Root: cfg.Store.Root, PathTemplate: cfg.Store.PathTemplate, Hostname: cfg.Hostname, Logger: s.log.With("component", "store")}
	s.agent = &delivery.LocalAgent{
		Directory: s.dir.users, Quotas: s.dir.sql, Store: s.store, Config: cfg.Delivery,
		Logger: s.log.With("component", "delivery"),
	}
	if s.srs, err = openSRS(cfg.SRS); err != nil {
		return err
	}
	if s.srs != nil {
		s.agent.ForwardSender = s.forwardSender
	}
	signer, err := s.openDKIM(cfg.DKIM)
	if err != nil {
		return err
	}
	s.dkim.Store(signer)
	s.agent.Sign = signSubmitted(s.dkim.Load)
	qc, err := s.queueConfig()
	if err != nil {
		return err
	}
	s.queue, err = queue.New(qc)
	if err != nil {
		return err
	}
	s.agent.Queue = s.queue
	if s.logins, err = login.New(s.loginConfig()); err != nil {
		return err
	}
	slots, waiting, perNetwork := s.logins.Limits()
	s.log.Info("login service", "max_concurrent_verifications", slots, "max_waiting", waiting,
		"max_waiting_per_network", perNetwork)
	s.metrics = newMetrics(s)
	limits := cfg.Limits
	limits.Networks = cfg.ClientNetworks // one grouping for the gate and the login service
	s.gate = &gate.Gate{Limits: limits, Logger: s.log.With("component", "gate"), Refused: s.metrics.refused}
	s.directory = instrumentedDirectory{s.dir.users, s.metrics}
	s.sendLimits = s.openSendLimits()
	s.agentI = instrumentedAgent{s.agent, s.metrics}
	for _, n := range cfg.SMTP.MyNetworks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return fmt.Errorf("smtp.mynetworks: %w", err)
		}
		s.myNetworks = append(s.myNetworks, p)
	}
	if err := s.openInbound(ctx); err != nil {
		return err
	}
	// End of DATA: sender authentication first, so the scanners see its
	// Authentication-Results field, then the scanners in inbound.order.
	s.checks = cfg.Inbound.pipeline(s.log.With("component", "inbound"), s.metrics.inbound())
	if steps := s.inboundSteps(); len(steps) > 0 {
		if s.checks == nil {
			s.checks = &inbound.Pipeline{Logger: s.log.With("component", "inbound"), Observer: s.metrics.inbound()}
		}
		s.checks.Steps = append(steps, s.checks.Steps...)
	}
	if s.checks != nil {
		// The checks' spam verdict (a scanner's, or DMARC quarantine)
		// reaches the agent in the envelope.
		s.agent.Filters = append(s.agent.Filters, cfg.Inbound.Junk.junkFilter())
	}
	if cfg.Delivery.Sieve {
		// After Junk: a spam verdict only changes where the implicit
		// keep goes, so a user's own fileinto still decides.
		s.agent.Filters = append(s.agent.Filters, s.sieveFilter())
	}
	for _, d := range []string{cfg.Store.Root, cfg.Queue.Dir, filepath.Join(cfg.DataDir, "spool")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	return s.queue.Start(ctx)
}

// loginConfig is the login service of every listener: the login section,
// the client networks, and the directory's idea of a login's address and
// of how new passwords are hashed (the dummy verification's cost).
func (s *server) loginConfig() login.Config {
	c := s.cfg.Login
	c.Networks = s.cfg.ClientNetworks
	c.Canonical = s.dir.users.LoginAddress
	c.DummyScheme = s.cfg.UserDB.PasswordScheme
	c.Logger = s.log.With("component", "login")
	return c
}

func (s *server) queueConfig() (queue.Config, error) {
	c := s.cfg.Queue
	qc := queue.Config{
		Dir: c.Dir, Hostname: s.cfg.Hostname, Resolver: c.Resolver, Port: c.Port,
		Workers: c.Workers, PerDomain: c.PerDomain, MaxAge: c.MaxAge, RetryMin: c.RetryMin, RetryMax: c.RetryMax,
		Logger: s.log.With("component", "queue"),
		// Bounces to our own users are delivered locally, not by MX.
		LocalDomain: func(domain string) bool {
			ok, err := s.dir.users.IsLocalDomain(context.Background(), domain)
			return ok || err != nil
		},
		Local: queueLocal(s.agent),
	}
	if s.srs != nil {
		qc.BounceTo = s.bounceTo
	}
	qc.SignDSN = signDSN(s.dkim.Load)
	if err := c.queueTLS(&qc); err != nil {
		return qc, err
	}
	sh, err := c.Smarthost.queueSmarthost()
	qc.Smarthost = sh
	return qc, err
}

// queueLocal is the queue's hook for local recipients (bounces to our
// users, destinations retried after a temporary failure), each with the
// final mark the agent spooled it with: each recipient's outcome reaches
// the queue on its own, as the reply the SMTP layer would give, so it is
// retried, bounced or done by itself.
func queueLocal(agent *delivery.LocalAgent) func(ctx context.Context, from string, rcpts []queue.Recipient, msg []byte) error {
	return func(ctx context.Context, from string, rcpts []queue.Recipient, msg []byte) error {
		rs := make([]delivery.Recipient, len(rcpts))
		for i, r := range rcpts {
			rs[i] = delivery.Recipient{Address: r.Addr, Final: r.Final}
		}
		outs := agent.Redeliver(ctx, queue.ItemID(ctx), from, rs, msg)
		errs := make(queue.RecipientErrors, len(rcpts))
		for i, r := range rcpts {
			errs[r.Addr] = nil
			if i >= len(outs) {
				errs[r.Addr] = smtp.Reply(delivery.Temp(delivery.StoreFailed))
			} else if outs[i].Failed() {
				errs[r.Addr] = smtp.Reply(outs[i])
			}
		}
		return errs
	}
}

// listenerSpec names one configured listener.
type listenerSpec struct {
	name     string
	l        Listener
	implicit bool // TLS from the first byte
}

func (s *server) specs() []listenerSpec {
	l := s.cfg.Listen
	return []listenerSpec{
		{"smtp", l.SMTP, false}, {"submission", l.Submission, false}, {"submissions", l.Submissions, true},
		{"lmtp", l.LMTP, false}, {"imap", l.IMAP, false}, {"imaps", l.IMAPS, true},
		{"pop3", l.POP3, false}, {"pop3s", l.POP3S, true},
		{"managesieve", l.ManageSieve, false},
	}
}

func (s *server) bindAll() error {
	for _, sp := range s.specs() {
		if sp.l.Address == "" || !s.implemented(sp.name) {
			continue
		}
		network := "tcp"
		if strings.HasPrefix(sp.l.Address, "/") {
			network = "unix"
			os.Remove(sp.l.Address)
		}
		ln, err := net.Listen(network, sp.l.Address)
		if err != nil {
			return fmt.Errorf("listen %s on %s: %w", sp.name, sp.l.Address, err)
		}
		s.bound[sp.name] = ln
	}
	return nil
}

func (s *server) bindMetrics() error {
	if s.cfg.Metrics.Address == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Metrics.Address)
	if err != nil {
		return fmt.Errorf("listen metrics on %s: %w", s.cfg.Metrics.Address, err)
	}
	s.bound["metrics"] = ln
	return nil
}

func (s *server) closeListeners() {
	for _, ln := range s.bound {
		ln.Close()
	}
}

// implemented reports whether this build serves a listener kind.
func (s *server) implemented(name string) bool {
	switch name {
	case "pop3", "pop3s", "smtp", "submission", "submissions", "lmtp", "imap", "imaps", "managesieve":
		return true
	}
	return false
}

// protocolServer is what the SMTP, IMAP and POP3 servers all offer; they
// are stopped through their shared gate.
type protocolServer interface {
	Serve(l net.Listener) error
	ServeTLS(l net.Listener) error // implicit TLS (465, 993, 995)
}

func (s *server) startAll() {
	for _, sp := range s.specs() {
		ln, ok := s.bound[sp.name]
		if !ok {
			continue
		}
		ln = s.metrics.listener(sp.name, ln)
		log := s.log.With("listener", sp.name)
		srv := s.newProtocolServer(sp, log)
		serve := srv.Serve
		if sp.implicit {
			serve = srv.ServeTLS
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := serve(ln); err != nil && !isClosed(err) {
				s.serveErr <- fmt.Errorf("%s: %w", sp.name, err)
			}
		}()
		log.Info("listening", "address", ln.Addr().String(), "implicit_tls", sp.implicit)
	}
}

// newProtocolServer configures the server for one listener kind.
func (s *server) newProtocolServer(sp listenerSpec, log *slog.Logger) protocolServer {
	switch sp.name {
	case "imap", "imaps":
		return &imap.Server{
			Directory: s.directory, Store: s.store, Quotas: s.dir.sql,
			TLSConfig: s.tls, AllowInsecureAuth: sp.l.InsecureAuth,
			Logins: s.logins, Logger: log,
			Gate: s.gate,
		}
	case "pop3", "pop3s":
		return &pop3.Server{
			Backend:  &pop3Backend{users: s.directory, quotas: s.dir.sql, store: s.store},
			Hostname: s.cfg.Hostname, TLSConfig: s.tls, AllowInsecureAuth: sp.l.InsecureAuth,
			Logger: log, Logins: s.logins, Locks: s.pop3Locks,
			Gate: s.gate,
		}
	case "managesieve":
		opts := s.cfg.sieveOptions()
		return &managesieve.Server{
			Backend:    &manageSieveBackend{users: s.directory, store: s.store, opts: opts, quota: s.cfg.sieveQuota()},
			Extensions: sieve.Extensions(), MaxRedirects: sieve.DefaultMaxRedirects,
			MaxScriptSize: s.cfg.sieveQuota().MaxSize,
			TLSConfig:     s.tls, AllowInsecureAuth: sp.l.InsecureAuth,
			Logger: log, Logins: s.logins, Gate: s.gate,
		}
	}
	role := smtp.RoleMTA
	switch sp.name {
	case "submission", "submissions":
		role = smtp.RoleSubmission
	case "lmtp":
		role = smtp.RoleLMTP
	}
	return &smtp.Server{
		Role: role, Hostname: s.cfg.Hostname, Directory: s.directory, Agent: s.agentI,
		TLSConfig: s.tls, AllowInsecureAuth: sp.l.InsecureAuth, MyNetworks: s.myNetworks,
		MaxMessageBytes: s.cfg.SMTP.MaxMessageBytes, MaxRecipients: s.cfg.SMTP.MaxRecipients,
		SkipHeaderSenderCheck: !s.cfg.SMTP.CheckHeaderFrom,
		Logins:                s.logins, Logger: log, SpoolDir: filepath.Join(s.cfg.DataDir, "spool"),
		Gate: s.gate, SRS: s.srs, Screens: s.mtaScreens(role), Screened: s.metrics.screened, Checks: s.checks, SendLimits: s.sendLimits,
	}
}

// vacationResponder answers Sieve's vacation action: From only as an
// address the account may send as, periods within sieve.vacation_*.
func (s *server) vacationResponder() *vacation.Responder {
	lo := s.cfg.Sieve.VacationMinPeriod
	if lo == 0 {
		lo = -1 // the key's 0 is no minimum, as Pigeonhole's
	}
	return &vacation.Responder{
		Maildir: s.store.MaildirPath, MaySendAs: s.dir.users.MaySendAs,
		MinPeriod: lo, MaxPeriod: s.cfg.Sieve.VacationMaxPeriod,
		Hostname: s.cfg.Hostname, Logger: s.log.With("component", "vacation"),
	}
}

// forwardSender is the sender of mail an alias or a filter forwards to a
// remote address: SRS, except for the null sender and senders in our own
// domains (we may send as them, and their bounces reach them). A sender SRS
// cannot read is kept, logged, rather than hold the mail.
func (s *server) forwardSender(ctx context.Context, from string) (string, error) {
	if from == "" {
		return "", nil
	}
	if _, domain, err := userdb.Split(from); err == nil {
		if local, err := s.dir.users.IsLocalDomain(ctx, domain); err == nil && local {
			return from, nil
		}
	}
	f, err := s.srs.Forward(from)
	if err != nil {
		s.log.Warn("srs: forwarding with the original sender", "from", from, "err", err)
		return from, nil
	}
	return f, nil
}

// openSRS reads the secrets (creating the secret file on the first start)
// and builds the Rewriter. The delivery agent is to call its Forward when it
// forwards to a remote destination; the SMTP listeners reverse bounces.
// bounceTo addresses the queue's DSN for a message we forwarded with an
// SRS sender to the original sender (for SRS1, the forwarder before us),
// rather than through our own MX. A sender that does not reverse keeps the
// bounce going to itself, where the SMTP front end refuses it as it would
// anyone's.
func (s *server) bounceTo(sender string) string {
	if !s.srs.Owns(sender) {
		return ""
	}
	orig, err := s.srs.Reverse(sender)
	if err != nil {
		s.log.Warn("srs: bounce of a forwarded message not reversed", "sender", sender, "err", err)
		return ""
	}
	return orig
}

func openSRS(c SRSConfig) (*srs.Rewriter, error) {
	if !c.Enabled {
		return nil, nil
	}
	secrets := c.Secrets
	if len(secrets) == 0 {
		if err := os.MkdirAll(filepath.Dir(c.SecretFile), 0o750); err != nil {
			return nil, fmt.Errorf("srs.secret_file: %w", err)
		}
		var err error
		if secrets, err = srs.ReadSecretFile(c.SecretFile); err != nil {
			return nil, fmt.Errorf("srs.secret_file: %w", err)
		}
	}
	return c.rewriter(secrets)
}

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, gate.ErrClosed)
}

// shutdown stops every listener through the one gate, ends idle
// connections and lets work in flight finish within the configured
// deadline, then stops the queue (its state stays consistent on disk
// whatever is cut).
func (s *server) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	s.stopControl()
	s.shutdownBridges(ctx)
	if err := s.gate.Shutdown(ctx); err != nil && !errors.Is(err, gate.ErrClosed) {
		s.log.Warn("listener shutdown", "err", err)
	}
	s.wg.Wait()
	if s.queue != nil {
		if err := s.queue.Shutdown(ctx); err != nil {
			s.log.Warn("queue shutdown", "err", err)
		}
	}
	s.log.Info("stopped")
	return nil
}

func (s *server) printHint(out io.Writer) {
	fmt.Fprintf(out, "vmaild is running (data in %s; %s).\n", s.cfg.DataDir, s.cfg.directorySummary())
	for _, sp := range s.specs() {
		if ln, ok := s.bound[sp.name]; ok {
			fmt.Fprintf(out, "  %-12s %s\n", sp.name, ln.Addr())
		}
	}
	for _, sp := range s.cfg.bridgeSpecs() {
		if ln, ok := s.bound[sp.name]; ok {
			fmt.Fprintf(out, "  %-12s %s\n", sp.name, ln.Addr())
		}
	}
	if ln, ok := s.bound["metrics"]; ok {
		fmt.Fprintf(out, "  %-12s http://%s/metrics /healthz\n", "metrics", ln.Addr())
	}
	domains, err := s.dir.domains.ListDomains(context.Background())
	if err == nil && len(domains) == 0 {
		fmt.Fprintln(out, "No domains yet. In another terminal:")
		fmt.Fprintln(out, "  go run ./cmd/vmaild domain add example.com")
		fmt.Fprintln(out, "  echo 'secret' | go run ./cmd/vmaild user add alice@example.com --password-stdin")
	}
}

// runAsIDs are the numeric user and group of the run_as user.
func runAsIDs(name string) (uid, gid int, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("run_as: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("run_as %s: numeric uid/gid expected", name)
	}
	return uid, gid, nil
}

// dropPrivileges switches to an unprivileged user after the ports are
// bound, when started as root.
func dropPrivileges(name string, log *slog.Logger) error {
	if os.Geteuid() != 0 || name == "" {
		return nil
	}
	uid, gid, err := runAsIDs(name)
	if err != nil {
		return err
	}
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return fmt.Errorf("run_as: setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("run_as: setgid: %w", err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("run_as: setuid: %w", err)
	}
	log.Info("dropped privileges", "user", name, "uid", uid, "gid", gid)
	return nil
}

// directorySummary says in words where the directory lives, for the
// start-up banner: "accounts, domains, aliases and quotas in SQLite" or
// "accounts in LDAP; domains, aliases and quotas in MySQL/MariaDB".
func (c *Config) directorySummary() string {
	sqlName := map[string]string{"sqlite": "SQLite", "mysql": "MySQL/MariaDB"}[c.SQL.Driver]
	if sqlName == "" {
		sqlName = c.SQL.Driver
	}
	if c.UserDB.Accounts == "ldap" {
		return "accounts in LDAP; domains, aliases and quotas in " + sqlName
	}
	return "accounts, domains, aliases and quotas in " + sqlName
}

// sieveFilter runs users' Sieve scripts at delivery, with the checks'
// verdicts for spamtest and virustest and the store for mailboxexists.
func (s *server) sieveFilter() *delivery.Sieve {
	cfg := s.cfg
	return &delivery.Sieve{
		Maildir:            s.store.MaildirPath,
		Before:             cfg.Delivery.SieveBefore,
		After:              cfg.Delivery.SieveAfter,
		RecipientDelimiter: cfg.UserDB.RecipientDelimiter,
		Verdicts:           sieveVerdicts,
		Vacation:           s.vacationResponder().Reply,
		MailboxExists: func(d *delivery.Destination, name string) bool {
			return s.store.FolderExists(store.Account{Address: d.Address, Maildir: d.Maildir}, name)
		},
		Logger: s.log.With("component", "sieve"),
	}
}

// sieveVerdicts gives Sieve's spamtest and virustest (RFC 5235) the
// checks' verdict: 0 (not tested) stays untested, spamtestplus's
// :percent spreads 1..10 over 0..100.
func sieveVerdicts(m *delivery.Mail) (spam, virus sieve.Verdict) {
	v := m.Verdict()
	if st := v.SpamTest(); st > 0 {
		spam = sieve.Verdict{Tested: true, Value: st, Percent: (st - 1) * 100 / 9}
	}
	if vt := v.VirusTest(); vt > 0 {
		virus = sieve.Verdict{Tested: true, Value: vt, Percent: (vt - 1) * 100 / 4}
	}
	return spam, virus
}
