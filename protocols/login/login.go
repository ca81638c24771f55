// Package login is the one login service every vmaild protocol checks
// passwords through: SMTP AUTH, IMAP LOGIN and AUTHENTICATE, POP3
// USER/PASS and AUTH, and whatever comes later. One Service is shared by
// every listener, so an attacker gets no fresh budget by switching port or
// protocol. It owns four decisions:
//
//   - Throttling. Failures are remembered per account (the canonical
//     address) and per client network (gate.Networks: an IPv4 address, an
//     IPv6 /64). Past a few free failures, the next attempt may not start
//     before a delay that doubles with each failure, up to a cap (15 s by
//     default, like Dovecot's auth penalty). There is no lockout: after
//     any burst of failures a correct password still logs in within the
//     cap. A client network that recently logged in to an account skips
//     the delays for that account until it fails there itself, so
//     strangers' failures never slow the owner's phone.
//   - A bound on concurrent password verifications. Argon2 takes tens of
//     MiB per verification; at most MaxConcurrentVerifications run at once
//     and at most MaxWaiting logins queue for a slot (no more than
//     MaxWaitingPerNetwork from one client network, so one network cannot
//     fill the queue; logins from trusted networks queue apart and go
//     first). Beyond that, or when the client leaves while queued, the
//     attempt fails with ErrBusy, a temporary failure (454 4.7.0,
//     NO [UNAVAILABLE], -ERR [SYS/TEMP]): try later, never "wrong password".
//   - Equal cost for unknown users. An attempt that is refused without any
//     verification (no such user, a cached refusal, an unreadable or
//     over-cap hash) runs one dummy verification of a hash in the
//     configured default scheme, so timing does not tell which names exist.
//   - Counting: attempts by result, verifications, waiters, refusals and
//     delays, read through Stats by the metrics at the daemon's seams.
//
// The directory sources do the verifying (userdb/password.Caps.Verify);
// the service reaches them through the password.Admission it puts in the
// attempt's context.
package login

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/password"
)

// Guard is what a protocol needs from the login service: run one attempt
// of a client, checking username and password with check (the protocol's
// own directory call), under the service's throttling and bounds. The
// error is check's, or ErrBusy, or the context's.
type Guard interface {
	Attempt(ctx context.Context, client netip.Addr, username, secret string,
		check func(ctx context.Context, username, secret string) error) error
}

// ErrBusy means the attempt found no room to verify the password. It wraps
// userdb.ErrUnavailable, so every protocol answers it as the temporary
// failure it is.
var ErrBusy = fmt.Errorf("%w: too many logins being verified", userdb.ErrUnavailable)

// Config configures a Service. Zero values give working defaults; the
// yaml keys are the daemon's login section.
type Config struct {
	MaxConcurrentVerifications int `yaml:"max_concurrent_verifications" help:"password verifications running at once across every listener; each Argon2 one holds its memory (19 MiB for the default scheme); 0: the number of CPUs"`
	MaxWaiting                 int `yaml:"max_waiting" help:"logins queued for a verification slot; beyond, a temporary failure (454 4.7.0, NO [UNAVAILABLE], -ERR [SYS/TEMP]); 0: 16 per verification slot"`
	MaxWaitingPerNetwork       int `yaml:"max_waiting_per_network" help:"of the queued logins, how many may come from one client network; 0: a quarter of max_waiting"`

	PenaltyFreeFailures int           `yaml:"penalty_free_failures" help:"failed logins per account and per client network that cost no delay (typos); 0: 2, negative: none"`
	PenaltyBase         time.Duration `yaml:"penalty_base" help:"delay before the next attempt after the first costly failure; doubles with each further failure; 0: 1s"`
	PenaltyCap          time.Duration `yaml:"penalty_cap" help:"longest delay; never a lockout: a correct password logs in within it; 0: 15s"`
	PenaltyWindow       time.Duration `yaml:"penalty_window" help:"failures are forgotten this long after the last one; 0: 15m"`
	TrustFor            time.Duration `yaml:"trust_for" help:"a client network that logged in to an account skips the delays for it this long afterwards, until it fails there; 0: 24h"`
	MaxEntries          int           `yaml:"max_entries" help:"accounts, client networks and trusted pairs remembered (each); the least recently updated go first; 0: 100000"`

	Hashes password.Caps `yaml:"hashes"`

	// Networks groups client addresses into client networks.
	Networks gate.Networks `yaml:"-"`
	// Canonical turns a typed login into the address it logs in as
	// (userdb.Users.LoginAddress); nil folds case and spaces only.
	Canonical func(login string) (string, error) `yaml:"-"`
	// DummyScheme is the scheme of the dummy hash verified for unknown
	// users: the one new passwords are hashed with ("" is
	// password.DefaultScheme).
	DummyScheme string `yaml:"-"`
	// Now and Sleep are the clock; tests inject their own.
	Now   func() time.Time                                 `yaml:"-"`
	Sleep func(ctx context.Context, d time.Duration) error `yaml:"-"`
	// Logger receives refused hashes and saturation; nil discards.
	Logger *slog.Logger `yaml:"-"`
}

func (c Config) withDefaults() Config {
	if c.MaxConcurrentVerifications <= 0 {
		c.MaxConcurrentVerifications = runtime.GOMAXPROCS(0)
	}
	if c.MaxWaiting <= 0 {
		c.MaxWaiting = 16 * c.MaxConcurrentVerifications
	}
	if c.MaxWaitingPerNetwork <= 0 {
		c.MaxWaitingPerNetwork = max(1, c.MaxWaiting/4)
	}
	switch {
	case c.PenaltyFreeFailures == 0:
		c.PenaltyFreeFailures = 2
	case c.PenaltyFreeFailures < 0:
		c.PenaltyFreeFailures = 0
	}
	if c.PenaltyBase <= 0 {
		c.PenaltyBase = time.Second
	}
	if c.PenaltyCap <= 0 {
		c.PenaltyCap = 15 * time.Second
	}
	if c.PenaltyWindow <= 0 {
		c.PenaltyWindow = 15 * time.Minute
	}
	if c.TrustFor <= 0 {
		c.TrustFor = 24 * time.Hour
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = 100000
	}
	if c.Canonical == nil {
		c.Canonical = func(login string) (string, error) { return strings.ToLower(strings.TrimSpace(login)), nil }
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Service is the login service. It is safe for concurrent use.
type Service struct {
	cfg   Config
	log   *slog.Logger
	dummy string // a hash of a random password in DummyScheme
	slots *slots

	mu       sync.Mutex
	accounts *table[string, record]
	networks *table[netip.Prefix, record]
	trusted  *table[pair, time.Time]
	costly   map[string]bool // accounts whose over-cap hash was logged

	results       [numResults]atomic.Uint64
	verifications atomic.Uint64
	dummies       atomic.Uint64
	penalties     atomic.Uint64
	penaltyNanos  atomic.Int64
}

var _ Guard = (*Service)(nil)

// New makes a Service. It hashes a random password once, in DummyScheme,
// to have a dummy to verify for unknown users.
func New(cfg Config) (*Service, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Hashes.Check(); err != nil {
		return nil, fmt.Errorf("login hashes: %w", err)
	}
	dummy, err := password.Hash(cfg.DummyScheme, rand.Text())
	if err != nil {
		return nil, fmt.Errorf("login dummy hash: %w", err)
	}
	// An empty password makes Verify check the caps without the work.
	if _, err := cfg.Hashes.Verify(context.Background(), dummy, ""); err != nil {
		return nil, fmt.Errorf("login hashes: the caps refuse what the password scheme writes: %w", err)
	}
	return &Service{
		cfg:      cfg,
		log:      cfg.Logger,
		dummy:    dummy,
		slots:    newSlots(cfg.MaxConcurrentVerifications, cfg.MaxWaiting, cfg.MaxWaitingPerNetwork),
		accounts: newTable[string, record](cfg.MaxEntries),
		networks: newTable[netip.Prefix, record](cfg.MaxEntries),
		trusted:  newTable[pair, time.Time](cfg.MaxEntries),
		costly:   map[string]bool{},
	}, nil
}

// Limits reports the bounds in force after defaults: verifications at
// once, logins queued, and logins queued from one client network.
func (s *Service) Limits() (verifications, waiting, perNetwork int) {
	return s.cfg.MaxConcurrentVerifications, s.cfg.MaxWaiting, s.cfg.MaxWaitingPerNetwork
}

// Attempt runs one login attempt of client (the connection's address;
// invalid for a unix socket peer, which is then throttled per account
// only). It waits out the delay the account's and the client network's
// recent failures call for, runs check under the verification bound,
// records the outcome, and makes a refusal cost one verification
// whatever its reason.
func (s *Service) Attempt(ctx context.Context, client netip.Addr, username, secret string,
	check func(ctx context.Context, username, secret string) error) error {
	account := s.accountKey(username)
	network := s.cfg.Networks.Of(client)
	trusted, wait := s.admit(network, account)
	if wait > 0 {
		s.penalties.Add(1)
		s.penaltyNanos.Add(int64(wait))
		if err := s.cfg.Sleep(ctx, wait); err != nil {
			s.count(resultCancelled)
			return fmt.Errorf("login delay for %s: %w", account, err)
		}
	}
	t := &ticket{s: s, network: network, trusted: trusted}
	err := check(password.WithAdmission(ctx, t), username, secret)
	switch {
	case err == nil:
		s.succeeded(network, account)
		s.count(resultOK)
		return nil
	case errors.Is(err, ErrBusy):
		s.count(resultBusy)
		return err
	case ctx.Err() != nil:
		s.count(resultCancelled)
		return err
	case userdb.Temporary(err):
		s.count(resultUnavailable)
		return err
	}
	if errors.Is(err, password.ErrTooCostly) {
		s.logCostly(account, err)
	}
	if t.verifications.Load() == 0 {
		if derr := s.verifyDummy(ctx, t, secret); derr != nil {
			// Refusing with "busy" here, as a verification would have,
			// keeps unknown names indistinguishable under load too.
			s.count(resultBusy)
			return derr
		}
	}
	s.failed(network, account)
	s.count(resultFailed)
	return err
}

// verifyDummy spends one verification of the dummy hash under t.
func (s *Service) verifyDummy(ctx context.Context, t *ticket, secret string) error {
	if secret == "" || len(secret) > password.MaxPasswordLen {
		secret = "-" // a password Verify would look at, so the work is done
	}
	_, err := s.cfg.Hashes.Verify(password.WithAdmission(ctx, t), s.dummy, secret)
	if errors.Is(err, password.ErrNotAdmitted) {
		return fmt.Errorf("login: %w", err)
	}
	s.dummies.Add(1)
	return nil
}

// accountKey is the account an attempt is counted against. A login the
// directory cannot canonicalise is still counted, by its folded text,
// capped in length so that junk cannot grow the table's memory.
func (s *Service) accountKey(username string) string {
	a, err := s.cfg.Canonical(username)
	if err != nil || a == "" {
		a = strings.ToLower(strings.TrimSpace(username))
	}
	if len(a) > 320 {
		a = a[:320]
	}
	return a
}

// logCostly logs a stored hash over the caps once per account: it is the
// admin's to fix, and an attacker must not be able to flood the log with
// it. The set is bounded; when full it starts over.
func (s *Service) logCostly(account string, err error) {
	s.mu.Lock()
	seen := s.costly[account]
	if !seen {
		if len(s.costly) >= 1000 {
			clear(s.costly)
		}
		s.costly[account] = true
	}
	s.mu.Unlock()
	if !seen {
		s.log.Warn("stored password hash refused: its cost exceeds the login.hashes caps; the account cannot log in until it is rehashed or the caps raised",
			"account", account, "err", err)
	}
}

// ticket is one attempt's password.Admission: it takes verification slots
// for the attempt's client network and counts the verifications.
type ticket struct {
	s             *Service
	network       netip.Prefix
	trusted       bool
	verifications atomic.Int32
}

func (t *ticket) Admit(ctx context.Context) (func(), error) {
	release, err := t.s.slots.acquire(ctx, t.network, t.trusted)
	if err != nil {
		return nil, err
	}
	t.verifications.Add(1)
	t.s.verifications.Add(1)
	return release, nil
}

// result classifies attempts for Stats.
type result int

const (
	resultOK result = iota
	resultFailed
	resultBusy
	resultUnavailable
	resultCancelled
	numResults
)

func (s *Service) count(r result) { s.results[r].Add(1) }

// Stats are the service's counters since New, and its state now.
type Stats struct {
	// Attempts by result: logged in; refused (wrong password, unknown
	// user, disabled); no room to verify; directory unavailable; client
	// gone during the delay or the wait.
	OK, Failed, Busy, Unavailable, Cancelled uint64
	// Verifications run (real and dummy), and of those the dummies.
	Verifications, Dummies uint64
	// Penalties is how many attempts were delayed, for PenaltyTime in all.
	Penalties   uint64
	PenaltyTime time.Duration
	// Verifying and Waiting are the slots in use and the logins queued
	// now; Refused counts logins turned away for want of room.
	Verifying, Waiting int
	Refused            uint64
	// PeakVerifying and PeakWaiting are the highest values seen.
	PeakVerifying, PeakWaiting int
}

// Stats reports the counters.
func (s *Service) Stats() Stats {
	st := Stats{
		OK:            s.results[resultOK].Load(),
		Failed:        s.results[resultFailed].Load(),
		Busy:          s.results[resultBusy].Load(),
		Unavailable:   s.results[resultUnavailable].Load(),
		Cancelled:     s.results[resultCancelled].Load(),
		Verifications: s.verifications.Load(),
		Dummies:       s.dummies.Load(),
		Penalties:     s.penalties.Load(),
		PenaltyTime:   time.Duration(s.penaltyNanos.Load()),
	}
	s.slots.stats(&st)
	return st
}
