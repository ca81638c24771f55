// Package throttle slows down and then locks out password guessing. SMTP
// AUTH, IMAP LOGIN/AUTHENTICATE and POP3 USER/PASS/AUTH share one Limiter so
// that an attacker cannot get a fresh budget by switching protocol.
//
// Failures are counted twice: per client address (an IPv6 client is counted
// per /64, since one host usually owns a whole /64) and per account. Each
// failure beyond a few free ones doubles the delay the next attempt must
// wait, up to a cap; after LockoutAfter failures within Window the key is
// locked for Lockout. A successful login resets the account's counter, not
// the address's, so a botnet node that owns one account cannot launder its
// guesses against others.
//
// Memory is bounded: counters expire after Window without failures (or at the
// end of a lockout), and at most MaxEntries keys are tracked. When the table is
// full the least recently failed unlocked key is dropped, so flooding the table
// with fresh keys cannot lift a lockout that is in force.
package throttle

import (
	"container/list"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/vmaild/vmaild/userdb"
)

// ErrLocked is returned by Do while the client address or the account is
// locked out. Protocols answer it as a temporary failure: the client should
// try again later, not ask the user for a new password.
var ErrLocked = errors.New("too many authentication failures, try again later")

// Policy is the delay and lockout schedule for one kind of key.
type Policy struct {
	// FreeFailures is how many failures cost nothing (default 2): people
	// mistype passwords.
	FreeFailures int
	// BaseDelay is the delay after the first costly failure (default 1s);
	// it doubles with every further failure.
	BaseDelay time.Duration
	// MaxDelay caps the delay (default 30s).
	MaxDelay time.Duration
	// LockoutAfter is the number of failures within Window that locks the
	// key (default 10; negative disables lockouts).
	LockoutAfter int
	// Window is how long failures are remembered after the last one
	// (default 15m).
	Window time.Duration
	// Lockout is how long a lockout lasts (default 15m).
	Lockout time.Duration
}

func (p Policy) withDefaults(lockoutAfter int) Policy {
	if p.FreeFailures <= 0 {
		p.FreeFailures = 2
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = time.Second
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 30 * time.Second
	}
	if p.LockoutAfter == 0 {
		p.LockoutAfter = lockoutAfter
	}
	if p.Window <= 0 {
		p.Window = 15 * time.Minute
	}
	if p.Lockout <= 0 {
		p.Lockout = 15 * time.Minute
	}
	return p
}

// Config configures a Limiter. The zero value is a sensible production
// setting.
type Config struct {
	// PerIP applies to client addresses (default lockout after 20
	// failures: many users may share one NAT address).
	PerIP Policy
	// PerAccount applies to login names (default lockout after 10).
	PerAccount Policy
	// MaxEntries bounds the number of tracked keys (default 100000).
	MaxEntries int
	// IPv6Prefix is the prefix length IPv6 clients are grouped by
	// (default 64).
	IPv6Prefix int
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
	// Logger receives lockout events; nil discards them.
	Logger *slog.Logger
}

// Limiter tracks authentication failures. It is safe for concurrent use. A
// nil *Limiter throttles nothing, so protocol servers work without one.
type Limiter struct {
	ip, account Policy
	maxEntries  int
	ipv6Prefix  int
	now         func() time.Time
	log         *slog.Logger

	mu      sync.Mutex
	entries map[key]*list.Element // of *entry
	lru     *list.List            // front: most recently failed
}

type kind uint8

const (
	kindIP kind = iota
	kindAccount
)

type key struct {
	kind kind
	name string
}

type entry struct {
	key         key
	failures    int
	last        time.Time // time of the last failure
	lockedUntil time.Time
}

// New returns a Limiter for cfg.
func New(cfg Config) *Limiter {
	l := &Limiter{
		ip:         cfg.PerIP.withDefaults(20),
		account:    cfg.PerAccount.withDefaults(10),
		maxEntries: cfg.MaxEntries,
		ipv6Prefix: cfg.IPv6Prefix,
		now:        cfg.Now,
		log:        cfg.Logger,
		entries:    make(map[key]*list.Element),
		lru:        list.New(),
	}
	if l.maxEntries <= 0 {
		l.maxEntries = 100000
	}
	if l.ipv6Prefix <= 0 || l.ipv6Prefix > 128 {
		l.ipv6Prefix = 64
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	return l
}

// Check reports how long the next attempt from ip for account must wait, and
// whether either is locked out. An invalid ip or an empty account is not
// tracked.
func (l *Limiter) Check(ip netip.Addr, account string) (delay time.Duration, locked bool) {
	if l == nil {
		return 0, false
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range l.keys(ip, account) {
		d, lk := l.state(k, now)
		delay = max(delay, d)
		locked = locked || lk
	}
	return delay, locked
}

// Failure records a failed attempt.
func (l *Limiter) Failure(ip netip.Addr, account string) {
	if l == nil {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range l.keys(ip, account) {
		l.fail(k, now)
	}
}

// Success records a successful login: the account's counter starts over.
// The address keeps its count, which simply expires.
func (l *Limiter) Success(ip netip.Addr, account string) {
	if l == nil {
		return
	}
	k := key{kindAccount, normAccount(account)}
	if k.name == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.entries[k]; ok {
		e := el.Value.(*entry)
		// A lockout stays in force: a correct password during a lockout is
		// never even checked, so a success cannot happen then, and a
		// caller that reports one anyway must not be able to lift it.
		if !e.lockedUntil.After(l.now()) {
			l.remove(el)
		}
	}
}

// Do runs one authentication attempt under the limiter: it refuses with
// ErrLocked during a lockout, waits out the delay (returning ctx's error if
// the client goes away meanwhile), runs attempt and records the outcome. A
// temporary failure (userdb.ErrUnavailable) or a cancelled attempt is not
// the client's fault and is not counted.
func (l *Limiter) Do(ctx context.Context, ip netip.Addr, account string, attempt func(context.Context) error) error {
	delay, locked := l.Check(ip, account)
	if locked {
		return ErrLocked
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	err := attempt(ctx)
	switch {
	case err == nil:
		l.Success(ip, account)
	case userdb.Temporary(err), ctx.Err() != nil:
	default:
		l.Failure(ip, account)
	}
	return err
}

func (l *Limiter) keys(ip netip.Addr, account string) []key {
	ks := make([]key, 0, 2)
	if ip.IsValid() {
		ip = ip.Unmap()
		if ip.Is6() {
			if p, err := ip.Prefix(l.ipv6Prefix); err == nil {
				ip = p.Addr()
			}
		}
		ks = append(ks, key{kindIP, ip.String()})
	}
	if a := normAccount(account); a != "" {
		ks = append(ks, key{kindAccount, a})
	}
	return ks
}

// normAccount folds case and surrounding space so that "Bob@Example.org "
// and "bob@example.org" share one counter; the directory does the real
// canonicalisation later, but the limiter must not be sidestepped by it.
func normAccount(a string) string {
	a = strings.TrimSpace(a)
	if len(a) > 320 {
		// Longer than any address; cap what is stored per key.
		a = a[:320]
	}
	return strings.ToLower(a)
}

func (l *Limiter) policy(k key) *Policy {
	if k.kind == kindIP {
		return &l.ip
	}
	return &l.account
}

// state returns the delay and lockout of k at now; l.mu is held.
func (l *Limiter) state(k key, now time.Time) (time.Duration, bool) {
	el, ok := l.entries[k]
	if !ok {
		return 0, false
	}
	e := el.Value.(*entry)
	p := l.policy(k)
	if now.Before(e.lockedUntil) {
		return 0, true
	}
	if now.Sub(e.last) > p.Window {
		return 0, false
	}
	return p.delay(e.failures), false
}

func (p *Policy) delay(failures int) time.Duration {
	n := failures - p.FreeFailures
	if n < 0 {
		return 0
	}
	d := p.BaseDelay
	for ; n > 0 && d < p.MaxDelay; n-- {
		d *= 2
	}
	return min(d, p.MaxDelay)
}

// fail counts one failure for k; l.mu is held.
func (l *Limiter) fail(k key, now time.Time) {
	p := l.policy(k)
	var e *entry
	if el, ok := l.entries[k]; ok {
		e = el.Value.(*entry)
		l.lru.MoveToFront(el)
		if now.Sub(e.last) > p.Window && !now.Before(e.lockedUntil) {
			e.failures = 0
		}
	} else {
		l.makeRoom(now)
		e = &entry{key: k}
		l.entries[k] = l.lru.PushFront(e)
	}
	e.failures++
	e.last = now
	if p.LockoutAfter > 0 && e.failures >= p.LockoutAfter && !now.Before(e.lockedUntil) {
		e.lockedUntil = now.Add(p.Lockout)
		e.failures = 0
		attr := "ip"
		if k.kind == kindAccount {
			attr = "account"
		}
		l.log.Warn("authentication lockout", attr, k.name,
			"failures", p.LockoutAfter, "until", e.lockedUntil)
	}
}

// sweepSteps bounds the work one insertion may do to free a slot, so a full
// table costs O(1) per failure instead of a scan.
const sweepSteps = 64

// makeRoom frees a slot when the table is full; l.mu is held. It walks from
// the least recently failed end, drops expired entries, and otherwise the
// oldest entry that is not locked; only if every visited entry is locked
// does it drop the oldest, so the table never grows past its cap.
func (l *Limiter) makeRoom(now time.Time) {
	if len(l.entries) < l.maxEntries {
		return
	}
	var victim *list.Element
	el := l.lru.Back()
	for i := 0; i < sweepSteps && el != nil; i++ {
		prev := el.Prev()
		e := el.Value.(*entry)
		locked := now.Before(e.lockedUntil)
		if !locked && now.Sub(e.last) > l.policy(e.key).Window {
			l.remove(el)
		} else if !locked && victim == nil {
			victim = el
		}
		el = prev
	}
	if len(l.entries) < l.maxEntries {
		return
	}
	if victim == nil {
		victim = l.lru.Back()
	}
	l.remove(victim)
}

func (l *Limiter) remove(el *list.Element) {
	delete(l.entries, el.Value.(*entry).key)
	l.lru.Remove(el)
}

// Len reports how many keys are tracked; for tests and metrics.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}
