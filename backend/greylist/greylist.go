// Package greylist tempfails the first attempt of an unknown (client
// network, sender, recipient) triplet and accepts a retry after a delay,
// as postgrey does: real MTAs retry, most spam software does not. Once a
// triplet has passed it is remembered for a long time, so a correspondent
// is delayed once, not every message.
package greylist

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/vmaild/vmaild/protocols/gate"
)

// Triplet identifies a delivery attempt. Client is the client's network
// in prefix notation; addresses are lower case, the null sender "".
type Triplet struct {
	Client    string
	Sender    string
	Recipient string
}

// Entry is what the store remembers of a triplet.
type Entry struct {
	FirstSeen time.Time // first attempt of the current round
	LastSeen  time.Time // last attempt, or last accepted message once passed
	Passed    bool      // a retry came after the delay
}

// Store keeps entries; the SQL directory is one (table greylist).
type Store interface {
	// Get returns the entry of t, found false when there is none.
	Get(ctx context.Context, t Triplet) (e Entry, found bool, err error)
	// Put creates or replaces the entry of t.
	Put(ctx context.Context, t Triplet, e Entry) error
	// Expire deletes entries last seen before the time, and says how
	// many.
	Expire(ctx context.Context, before time.Time) (int64, error)
}

// Defaults for a Greylister's zero fields.
const (
	DefaultDelay     = 5 * time.Minute
	DefaultRetryMax  = 24 * time.Hour
	DefaultRemember  = 35 * 24 * time.Hour
	DefaultIPv4Bits  = 24 // postgrey's default: a farm of senders in one /24 is one client
	DefaultIPv6Bits  = 64
	retryHintRounded = time.Second
)

// Greylister decides. Store is required; every other zero field is a
// default.
type Greylister struct {
	Store Store
	// Delay is how long a new triplet is refused (default 5m).
	Delay time.Duration
	// RetryMax is how long after the first attempt a retry still counts
	// (default 24h); later, the triplet starts over.
	RetryMax time.Duration
	// Remember is how long a passed triplet stays passed without mail
	// (default 35 days).
	Remember time.Duration
	// Networks groups clients (default /24 and /64), so a sender's pool
	// of outgoing servers counts as one client.
	Networks gate.Networks
	// AllowNetworks are never greylisted (big senders that do not retry
	// from the same address, partners).
	AllowNetworks []netip.Prefix
	// AllowDomains are sender or recipient domains never greylisted; a
	// name matches itself and its subdomains.
	AllowDomains []string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger hears of store failures; nil discards.
	Logger *slog.Logger
}

// Decision is the answer for one recipient.
type Decision struct {
	// Defer is true when the attempt must be refused with a temporary
	// error; RetryIn is how long until a retry will be accepted.
	Defer   bool
	RetryIn time.Duration
}

// Check records the attempt and decides. A store failure is returned
// with a zero Decision: the caller chooses whether greylisting fails open.
func (g *Greylister) Check(ctx context.Context, ip netip.Addr, sender, recipient string) (Decision, error) {
	if !ip.IsValid() || g.allowed(ip, sender, recipient) {
		return Decision{}, nil
	}
	nets := g.Networks
	if nets.IPv4Prefix == 0 {
		nets.IPv4Prefix = DefaultIPv4Bits
	}
	if nets.IPv6Prefix == 0 {
		nets.IPv6Prefix = DefaultIPv6Bits
	}
	t := Triplet{Client: nets.Of(ip).String(), Sender: strings.ToLower(sender), Recipient: strings.ToLower(recipient)}
	now := g.now()
	e, found, err := g.Store.Get(ctx, t)
	if err != nil {
		return Decision{}, fmt.Errorf("greylist %v: %w", t, err)
	}
	delay := or(g.Delay, DefaultDelay)
	switch {
	case found && e.Passed && now.Sub(e.LastSeen) <= or(g.Remember, DefaultRemember):
		e.LastSeen = now
		return Decision{}, g.put(ctx, t, e)
	case found && !e.Passed && now.Sub(e.FirstSeen) <= or(g.RetryMax, DefaultRetryMax):
		if wait := e.FirstSeen.Add(delay).Sub(now); wait > 0 {
			e.LastSeen = now
			return Decision{Defer: true, RetryIn: wait.Round(retryHintRounded)}, g.put(ctx, t, e)
		}
		return Decision{}, g.put(ctx, t, Entry{FirstSeen: e.FirstSeen, LastSeen: now, Passed: true})
	}
	// Unknown, forgotten, or retried too late: a new round.
	return Decision{Defer: true, RetryIn: delay}, g.put(ctx, t, Entry{FirstSeen: now, LastSeen: now})
}

func (g *Greylister) put(ctx context.Context, t Triplet, e Entry) error {
	if err := g.Store.Put(ctx, t, e); err != nil {
		return fmt.Errorf("greylist %v: %w", t, err)
	}
	return nil
}

// Expire forgets triplets nobody has used for longer than they matter.
func (g *Greylister) Expire(ctx context.Context) (int64, error) {
	keep := max(or(g.Remember, DefaultRemember), or(g.RetryMax, DefaultRetryMax))
	return g.Store.Expire(ctx, g.now().Add(-keep))
}

func (g *Greylister) allowed(ip netip.Addr, sender, recipient string) bool {
	ip = ip.Unmap()
	for _, p := range g.AllowNetworks {
		if p.Contains(ip) {
			return true
		}
	}
	for _, addr := range []string{sender, recipient} {
		_, dom, ok := strings.Cut(addr, "@")
		if !ok {
			continue
		}
		dom = strings.ToLower(dom)
		for _, a := range g.AllowDomains {
			a = strings.ToLower(strings.Trim(a, "."))
			if dom == a || strings.HasSuffix(dom, "."+a) {
				return true
			}
		}
	}
	return false
}

func (g *Greylister) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// DeferredError asks the client to retry; it is temporary.
type DeferredError struct{ RetryIn time.Duration }

func (e *DeferredError) Error() string {
	return fmt.Sprintf("Greylisted, try again in %d seconds", int(e.RetryIn.Seconds()))
}

// Temporary is true: the client is welcome to retry.
func (e *DeferredError) Temporary() bool { return true }

// Name names greylisting in logs and metrics.
func (g *Greylister) Name() string { return "greylist" }

// ScreenRcpt implements the SMTP server's Screen. A store that fails lets
// the mail through (greylisting only delays; losing it must not stop
// mail), logged when Logger is set.

func (g *Greylister) ScreenRcpt(ctx context.Context, ip netip.Addr, _, from, rcpt string) error {
	d, err := g.Check(ctx, ip, from, rcpt)
	if err != nil {
		if g.Logger != nil {
			g.Logger.Warn("greylisting skipped", "err", err)
		}
		return nil
	}
	if d.Defer {
		return &DeferredError{RetryIn: d.RetryIn}
	}
	return nil
}
