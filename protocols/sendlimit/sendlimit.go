// Package sendlimit bounds what authenticated users send: messages per
// hour, recipients per message and recipients per hour, for each account
// and for each domain (its accounts together). A stolen password then
// sends a few hundred spams, not a million, and the admin sees who is
// close to the limit.
//
// Counts live in memory, keyed by canonical account and by domain, in a
// sliding window of an hour approximated by two fixed windows (the current
// hour's count plus the previous hour's weighted by how much of it is still
// inside the window), which costs two counters per limit and key. A
// message is charged when it begins (MAIL) and each recipient when it is
// accepted (RCPT); a transaction that ends without a message accepted gives
// its charges back.
//
// Limits come from the configuration (defaults) and from the directory
// (overrides per account and per domain, looked up at most once a minute
// per key). The package knows nothing about the wire: the SMTP server maps
// a Refusal to its reply.
package sendlimit

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/vmaild/vmaild/userdb"
)

// Limits are one account's or one domain's limits; 0 is unlimited.
type Limits struct {
	MessagesPerHour      int64 `yaml:"messages_per_hour" help:"messages per hour (sliding window); 0: unlimited"`
	RecipientsPerMessage int64 `yaml:"recipients_per_message" help:"recipients of one message; 0: unlimited (smtp.max_recipients still applies)"`
	RecipientsPerHour    int64 `yaml:"recipients_per_hour" help:"recipients per hour over all messages (sliding window); 0: unlimited"`
}

// With applies the directory's overrides to the configured defaults.
func (l Limits) With(o userdb.SendLimits) Limits {
	if o.MessagesPerHour != nil {
		l.MessagesPerHour = *o.MessagesPerHour
	}
	if o.RecipientsPerMessage != nil {
		l.RecipientsPerMessage = *o.RecipientsPerMessage
	}
	if o.RecipientsPerHour != nil {
		l.RecipientsPerHour = *o.RecipientsPerHour
	}
	return l
}

// Defaults of zero Config fields.
const (
	DefaultWindow     = time.Hour
	DefaultMaxEntries = 100000
	DefaultLookupTTL  = time.Minute
)

// Config sets a Limiter up. Its zero value limits nothing.
type Config struct {
	// Account are every account's limits unless the directory overrides
	// them.
	Account Limits
	// Domain are each domain's limits, all its accounts together, unless
	// the directory overrides them.
	Domain Limits
	// Lookup returns the directory's overrides for an account and its
	// domain; nil: the defaults only. An error refuses the message as
	// "try later".
	Lookup func(ctx context.Context, account string) (acct, domain userdb.SendLimits, err error)
	// LookupTTL is how long an answer of Lookup is reused (default 1m).
	LookupTTL time.Duration
	// Window is the length of "an hour" (default DefaultWindow).
	Window time.Duration
	// MaxEntries bounds the accounts and domains kept (default 100000).
	// When full, keys idle for two windows go first (their counts are
	// zero), then arbitrary ones.
	MaxEntries int
	// Now is the clock; tests inject one.
	Now func() time.Time
	// Refused, when set, is told of every refusal (a metric); it runs
	// under the Limiter's lock and must not call it.
	Refused func(*Refusal)
}

// Kinds of limit, as a Refusal and the metrics name them.
const (
	MessagesPerHour      = "messages_per_hour"
	RecipientsPerMessage = "recipients_per_message"
	RecipientsPerHour    = "recipients_per_hour"
)

// Refusal says which limit a message or a recipient is over.
type Refusal struct {
	// Key is the account, or "@domain" for a domain's limit.
	Key string
	// Limit is MessagesPerHour, RecipientsPerMessage or RecipientsPerHour.
	Limit string
	Max   int64
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("sending limit of %s reached: %d %s", r.Key, r.Max, r.Limit)
}

// PerMessage reports whether the refusal is of one message's recipients
// (the rest may go in another message at once), not of the hourly rate.
func (r *Refusal) PerMessage() bool { return r.Limit == RecipientsPerMessage }

// Limiter counts and refuses. It is safe for concurrent use; one is
// shared by every listener that takes authenticated mail.
type Limiter struct {
	cfg     Config
	window  int64 // nanoseconds
	mu      sync.Mutex
	entries map[string]*entry
}

// entry is one account's or domain's counters.
type entry struct {
	key        string
	msgs       counter
	rcpts      counter
	limits     Limits
	lookedUp   int64 // when limits were read (unix nanoseconds); 0: never
	lastUse    int64
	domain     bool
	overridden bool // the directory set some limit
}

// counter is a two-window sliding count.
type counter struct {
	start     int64 // start of the current window, unix nanoseconds
	cur, prev int64
}

// roll moves the counter to the window holding now.
func (c *counter) roll(now, size int64) {
	s := now - now%size
	switch {
	case s == c.start:
	case s == c.start+size:
		c.prev, c.cur, c.start = c.cur, 0, s
	case s > c.start:
		c.prev, c.cur, c.start = 0, 0, s
	}
}

// count is the weighted count of the last window's length before now.
func (c *counter) count(now, size int64) int64 {
	c.roll(now, size)
	// Clamped: a clock stepped back must not weigh the last window more.
	rest := min(max(float64(size-(now-c.start))/float64(size), 0), 1)
	return c.cur + int64(math.Ceil(float64(c.prev)*rest))
}

// take charges one unless that goes over max (0: unlimited); it returns
// the window charged, for a refund.
func (c *counter) take(now, size, max int64) (int64, bool) {
	if max > 0 && c.count(now, size)+1 > max {
		return 0, false
	}
	c.roll(now, size)
	c.cur++
	return c.start, true
}

// give takes back a charge made in window w.
func (c *counter) give(w, size int64) {
	switch {
	case w == c.start && c.cur > 0:
		c.cur--
	case w == c.start-size && c.prev > 0:
		c.prev--
	}
}

// New returns a Limiter for cfg.
func New(cfg Config) *Limiter {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.LookupTTL <= 0 {
		cfg.LookupTTL = DefaultLookupTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Limiter{cfg: cfg, window: int64(cfg.Window), entries: make(map[string]*entry)}
}

// SetLimits changes the configured defaults (a reload). Counts are kept;
// every key's limits are read again, with the directory's overrides, at
// its next message.
func (l *Limiter) SetLimits(account, domain Limits) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg.Account, l.cfg.Domain = account, domain
	for _, e := range l.entries {
		e.lookedUp = 0
	}
}

// Tx is one message's charges, from Begin to Commit or Abort.
type Tx struct {
	l          *Limiter
	acct, dom  *entry
	msgWindow  int64
	rcpts      []int64 // window of each recipient charged
	perMessage int64   // 0: unlimited
	perMsgKey  string
	done       bool
}

// Begin starts a message of account (canonical address): it is refused
// with a *Refusal when the account or its domain has sent its messages
// of the hour, with the lookup's error when the directory fails.
func (l *Limiter) Begin(ctx context.Context, account string) (*Tx, error) {
	_, domain, err := userdb.Split(account)
	if err != nil {
		return nil, fmt.Errorf("sendlimit: %w", err)
	}
	if err := l.refresh(ctx, account, domain); err != nil {
		return nil, err
	}
	now := l.cfg.Now().UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.entry(account, false, now)
	d := l.entry("@"+domain, true, now)
	wa, ok := a.msgs.take(now, l.window, a.limits.MessagesPerHour)
	if !ok {
		return nil, l.refuse(&Refusal{Key: a.key, Limit: MessagesPerHour, Max: a.limits.MessagesPerHour})
	}
	if _, ok := d.msgs.take(now, l.window, d.limits.MessagesPerHour); !ok {
		a.msgs.give(wa, l.window)
		return nil, l.refuse(&Refusal{Key: d.key, Limit: MessagesPerHour, Max: d.limits.MessagesPerHour})
	}
	t := &Tx{l: l, acct: a, dom: d, msgWindow: wa}
	t.perMessage, t.perMsgKey = a.limits.RecipientsPerMessage, a.key
	if m := d.limits.RecipientsPerMessage; m > 0 && (t.perMessage <= 0 || m < t.perMessage) {
		t.perMessage, t.perMsgKey = m, d.key
	}
	return t, nil
}

// Recipient charges one more recipient, or refuses it with a *Refusal.
func (t *Tx) Recipient() error {
	if t.perMessage > 0 && int64(len(t.rcpts)) >= t.perMessage {
		return t.l.refuse(&Refusal{Key: t.perMsgKey, Limit: RecipientsPerMessage, Max: t.perMessage})
	}
	l := t.l
	now := l.cfg.Now().UnixNano()
	l.mu.Lock()
	defer l.mu.Unlock()
	a, d := t.acct, t.dom
	w, ok := a.rcpts.take(now, l.window, a.limits.RecipientsPerHour)
	if !ok {
		return l.refuse(&Refusal{Key: a.key, Limit: RecipientsPerHour, Max: a.limits.RecipientsPerHour})
	}
	if _, ok := d.rcpts.take(now, l.window, d.limits.RecipientsPerHour); !ok {
		a.rcpts.give(w, l.window)
		return l.refuse(&Refusal{Key: d.key, Limit: RecipientsPerHour, Max: d.limits.RecipientsPerHour})
	}
	a.lastUse, d.lastUse = now, now
	t.rcpts = append(t.rcpts, w)
	return nil
}

// refuse reports r to Config.Refused and returns it.
func (l *Limiter) refuse(r *Refusal) error {
	if l.cfg.Refused != nil {
		l.cfg.Refused(r)
	}
	return r
}

// Commit keeps the charges: the message was accepted. It may race with
// Abort (BDAT runs on a goroutine of its own), hence the lock.
func (t *Tx) Commit() {
	t.l.mu.Lock()
	t.done = true
	t.l.mu.Unlock()
}

// Abort gives the charges back, unless Commit came first: the
// transaction ended without a message accepted (RSET, QUIT, a refused
// DATA). A window that has passed meanwhile keeps its count.
func (t *Tx) Abort() {
	l := t.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.done {
		return
	}
	t.done = true
	for _, e := range []*entry{t.acct, t.dom} {
		e.msgs.give(t.msgWindow, l.window)
		for _, w := range t.rcpts {
			e.rcpts.give(w, l.window)
		}
	}
}

// refresh reads the directory's limits for an account and its domain
// when they are older than LookupTTL. The lookup runs outside the lock.
func (l *Limiter) refresh(ctx context.Context, account, domain string) error {
	now := l.cfg.Now().UnixNano()
	l.mu.Lock()
	a, d := l.entries[account], l.entries["@"+domain]
	fresh := a != nil && d != nil && a.lookedUp != 0 && d.lookedUp != 0 &&
		now-min(a.lookedUp, d.lookedUp) < int64(l.cfg.LookupTTL)
	l.mu.Unlock()
	if fresh {
		return nil
	}
	var ao, do userdb.SendLimits
	if l.cfg.Lookup != nil {
		var err error
		if ao, do, err = l.cfg.Lookup(ctx, account); err != nil {
			return fmt.Errorf("sendlimit: limits of %s: %w", account, err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a = l.entry(account, false, now)
	d = l.entry("@"+domain, true, now)
	a.limits, a.lookedUp, a.overridden = l.cfg.Account.With(ao), now, ao != (userdb.SendLimits{})
	d.limits, d.lookedUp, d.overridden = l.cfg.Domain.With(do), now, do != (userdb.SendLimits{})
	return nil
}

// entry finds or makes the counters of key; l.mu is held.
func (l *Limiter) entry(key string, domain bool, now int64) *entry {
	e := l.entries[key]
	if e == nil {
		if len(l.entries) >= l.cfg.MaxEntries {
			l.evict(now)
		}
		e = &entry{key: key, domain: domain}
		if domain {
			e.limits = l.cfg.Domain
		} else {
			e.limits = l.cfg.Account
		}
		l.entries[key] = e
	}
	e.lastUse = now
	return e
}

// evict makes room: every key idle for two windows counts nothing and
// goes; when none is, an arbitrary tenth of the keys go (their senders
// get a fresh count, the price of bounded memory).
func (l *Limiter) evict(now int64) {
	for k, e := range l.entries {
		if now-e.lastUse >= 2*l.window {
			delete(l.entries, k)
		}
	}
	drop := len(l.entries) - l.cfg.MaxEntries + max(1, l.cfg.MaxEntries/10)
	for k := range l.entries {
		if drop <= 0 {
			break
		}
		delete(l.entries, k)
		drop--
	}
}

// Usage is one account's or domain's counts against its hourly limits.
type Usage struct {
	// Key is the account, or "@domain".
	Key               string `json:"key"`
	Messages          int64  `json:"messages"`
	MessagesPerHour   int64  `json:"messages_per_hour"`
	Recipients        int64  `json:"recipients"`
	RecipientsPerHour int64  `json:"recipients_per_hour"`
	// Overridden says the directory sets this key's limits.
	Overridden bool `json:"overridden,omitempty"`
	// Fraction is the larger of the counts' shares of their limits (1:
	// at the limit); 0 when nothing is limited.
	Fraction float64 `json:"fraction"`
}

// Near lists the keys whose count of the window is at least fraction of
// an hourly limit (0 lists every key with a count), the fullest first.
func (l *Limiter) Near(fraction float64) []Usage {
	now := l.cfg.Now().UnixNano()
	l.mu.Lock()
	var out []Usage
	for _, e := range l.entries {
		u := Usage{
			Key:               e.key,
			Messages:          e.msgs.count(now, l.window),
			MessagesPerHour:   e.limits.MessagesPerHour,
			Recipients:        e.rcpts.count(now, l.window),
			RecipientsPerHour: e.limits.RecipientsPerHour,
			Overridden:        e.overridden,
		}
		if u.Messages == 0 && u.Recipients == 0 {
			continue
		}
		if u.MessagesPerHour > 0 {
			u.Fraction = float64(u.Messages) / float64(u.MessagesPerHour)
		}
		if u.RecipientsPerHour > 0 {
			u.Fraction = max(u.Fraction, float64(u.Recipients)/float64(u.RecipientsPerHour))
		}
		if u.Fraction >= fraction {
			out = append(out, u)
		}
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b Usage) int {
		if c := cmp.Compare(b.Fraction, a.Fraction); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return out
}
