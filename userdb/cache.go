package userdb

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// CacheConfig sizes the directory cache. Zero values give working defaults.
type CacheConfig struct {
	// TTL bounds how long a positive answer (and a verified password) is
	// reused: after a password change the old one stops working within it.
	TTL time.Duration `yaml:"ttl" help:"how long a found account and a verified password are reused; after a password change the old one works at most this long; 0: 1m"`
	// NegativeTTL bounds how long "no such user" and "wrong password" are
	// remembered.
	NegativeTTL time.Duration `yaml:"negative_ttl" help:"how long \"no such user\" and \"wrong password\" are remembered; 0: 10s"`
	// MaxEntries bounds memory; the least recently used entries go first.
	MaxEntries int `yaml:"max_entries" help:"cached answers kept; the least recently used go first"`
	// Now is the clock; tests inject one.
	Now func() time.Time `yaml:"-"`
}

const cacheShards = 32

func (c CacheConfig) withDefaults() CacheConfig {
	if c.TTL <= 0 {
		c.TTL = time.Minute
	}
	if c.NegativeTTL <= 0 {
		c.NegativeTTL = 10 * time.Second
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = 100000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Cache sits in front of any sources, so a burst of logins or RCPTs does
// not become a burst of directory round trips. Only answers are cached;
// "temporarily unavailable" never is, so an outage ends as soon as the
// backend is back. Concurrent identical lookups share one round trip, and
// each caller waits for it no longer than its own context allows and than
// the source's timeout (see Bounded).
//
// Passwords are never stored: a verified login is remembered as an HMAC of
// the password under a key that lives only in this process.
type Cache struct {
	accounts AccountSource
	domains  DomainSource
	cfg      CacheConfig
	key      []byte
	seed     maphash.Seed
	shards   [cacheShards]cacheShard
	flight   flightGroup
	// accountWait and domainWait bound waiting for a shared lookup: the
	// sources' timeouts, or 0 for a source that does not say.
	accountWait, domainWait time.Duration
	// ttl and negTTL are cfg's TTLs, changed at run time by SetTTL.
	ttl, negTTL atomic.Int64
	// gen counts flushes: an answer loaded before a flush is not stored
	// after it, so a flush is never undone by a lookup in flight.
	gen atomic.Uint64

	hits, misses counter
}

// Bounded is implemented by a source that bounds each of its operations
// (ldap.timeout, sql.timeout). The cache bounds by it the wait for a
// lookup that another caller started, so a waiter answers in time even if
// that lookup is stuck.
type Bounded interface {
	Timeout() time.Duration
}

// flightGrace is how much longer than the source's timeout a caller waits
// for a shared lookup: enough for a source that gives up at its deadline
// to deliver its answer.
const flightGrace = 250 * time.Millisecond

// errLookupStuck is what a caller gets when a shared lookup outlives its
// source's timeout.
var errLookupStuck = errors.New("shared lookup did not finish within the directory timeout")

// sourceTimeout is src's timeout, or 0 when it does not say.
func sourceTimeout(src any) time.Duration {
	if b, ok := src.(Bounded); ok {
		return b.Timeout()
	}
	return 0
}

// NewCache wraps the sources; either may be nil when not used.
func NewCache(accounts AccountSource, domains DomainSource, cfg CacheConfig) *Cache {
	c := &Cache{accounts: accounts, domains: domains, cfg: cfg.withDefaults(), seed: maphash.MakeSeed(),
		accountWait: sourceTimeout(accounts), domainWait: sourceTimeout(domains)}
	c.ttl.Store(int64(c.cfg.TTL))
	c.negTTL.Store(int64(c.cfg.NegativeTTL))
	c.key = make([]byte, 32)
	if _, err := rand.Read(c.key); err != nil {
		panic("userdb: no randomness for the cache key: " + err.Error())
	}
	per := c.cfg.MaxEntries / cacheShards
	if per < 1 {
		per = 1
	}
	for i := range c.shards {
		c.shards[i] = cacheShard{max: per, items: map[string]*list.Element{}, order: list.New()}
	}
	return c
}

// Accounts is the cached AccountSource.
func (c *Cache) Accounts() AccountSource { return cachedAccounts{c} }

// Domains is the cached DomainSource.
func (c *Cache) Domains() DomainSource { return cachedDomains{c} }

// Senders returns m answering through this cache. The sender map is not
// one of the sources NewCache takes because it is optional and may live
// apart from the domains.
func (c *Cache) Senders(m SenderMap) SenderMap { return cachedSenders{c, m} }

// Stats returns hit and miss counts (for metrics).
func (c *Cache) Stats() (hits, misses uint64) { return c.hits.load(), c.misses.load() }

// SetTTL changes the TTLs of answers cached from now on (a configuration
// reload); zero keeps the current one. Entries already cached keep theirs.
func (c *Cache) SetTTL(ttl, negative time.Duration) {
	if ttl > 0 {
		c.ttl.Store(int64(ttl))
	}
	if negative > 0 {
		c.negTTL.Store(int64(negative))
	}
}

// TTL returns the TTLs in force.
func (c *Cache) TTL() (ttl, negative time.Duration) {
	return time.Duration(c.ttl.Load()), time.Duration(c.negTTL.Load())
}

// Forget drops what is cached about one address: its account, its
// verified (or refused) password and its sender rights, so a password
// changed in the directory behind vmaild's back takes effect at once.
// address must be canonical (Users.LoginAddress).
func (c *Cache) Forget(address string) {
	c.gen.Add(1)
	for _, key := range []string{"a\x00" + address, "p\x00" + address, "s\x00" + address, "l\x00" + address} {
		s := c.shard(key)
		s.mu.Lock()
		if el, ok := s.items[key]; ok {
			s.order.Remove(el)
			delete(s.items, key)
		}
		s.mu.Unlock()
	}
}

// Flush forgets everything (after an admin change).
func (c *Cache) Flush() {
	c.gen.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.items = map[string]*list.Element{}
		s.order.Init()
		s.mu.Unlock()
	}
}

type cachedAccounts struct{ c *Cache }

// Timeout is the account source's (Bounded), so that Users bounds a call
// through the cache as it would one without.
func (a cachedAccounts) Timeout() time.Duration { return a.c.accountWait }

func (a cachedAccounts) LookupAccount(ctx context.Context, address string) (*Account, error) {
	v, err := a.c.lookup(ctx, "a\x00"+address, a.c.accountWait, func(ctx context.Context) (any, error) {
		return a.c.accounts.LookupAccount(ctx, address)
	})
	if err != nil {
		return nil, err
	}
	acct := *v.(*Account)
	return &acct, nil
}

// authEntry remembers one verified (or refused) password for an address.
type authEntry struct {
	mac  []byte
	acct *Account // nil: the password was wrong
}

func (a cachedAccounts) Authenticate(ctx context.Context, address, password string) (*Account, error) {
	c := a.c
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(address))
	m.Write([]byte{0})
	m.Write([]byte(password))
	mac := m.Sum(nil)
	key := "p\x00" + address
	if v, ok := c.get(key); ok {
		e := v.value.(authEntry)
		if hmac.Equal(e.mac, mac) {
			c.hits.add()
			if e.acct == nil {
				return nil, ErrBadCredentials
			}
			acct := *e.acct
			return &acct, nil
		}
	}
	c.misses.add()
	gen := c.gen.Load()
	acct, err := c.accounts.Authenticate(ctx, address, password)
	switch {
	case c.gen.Load() != gen:
		// Flushed meanwhile: the answer may predate the change.
	case err == nil:
		cp := *acct
		c.put(key, authEntry{mac: mac, acct: &cp}, time.Duration(c.ttl.Load()))
	case errors.Is(err, ErrBadCredentials):
		c.put(key, authEntry{mac: mac}, time.Duration(c.negTTL.Load()))
	}
	return acct, err
}

type cachedDomains struct{ c *Cache }

// Timeout is the domain source's (Bounded).
func (d cachedDomains) Timeout() time.Duration { return d.c.domainWait }

func (d cachedDomains) LookupDomain(ctx context.Context, name string) (*Domain, error) {
	v, err := d.c.lookup(ctx, "d\x00"+name, d.c.domainWait, func(ctx context.Context) (any, error) {
		return d.c.domains.LookupDomain(ctx, name)
	})
	if err != nil {
		return nil, err
	}
	dom := *v.(*Domain)
	return &dom, nil
}

func (d cachedDomains) LookupAliases(ctx context.Context, source string) ([]string, error) {
	v, err := d.c.lookup(ctx, "l\x00"+source, d.c.domainWait, func(ctx context.Context) (any, error) {
		dests, err := d.c.domains.LookupAliases(ctx, source)
		return dests, err
	})
	if err != nil {
		return nil, err
	}
	return append([]string(nil), v.([]string)...), nil
}

type cachedSenders struct {
	c *Cache
	m SenderMap
}

func (s cachedSenders) SenderLogins(ctx context.Context, key string) ([]string, error) {
	wait := s.c.domainWait
	if b, ok := s.m.(Bounded); ok {
		wait = b.Timeout()
	}
	v, err := s.c.lookup(ctx, "s\x00"+key, wait, func(ctx context.Context) (any, error) {
		logins, err := s.m.SenderLogins(ctx, key)
		return logins, err
	})
	if err != nil {
		return nil, err
	}
	return append([]string(nil), v.([]string)...), nil
}

// lookup serves key from the cache, or loads it once however many callers
// ask at the same moment. Not-found answers are cached as negatives. wait
// is the source's timeout (0: unknown), which bounds waiting for the load.
func (c *Cache) lookup(ctx context.Context, key string, wait time.Duration, load func(context.Context) (any, error)) (any, error) {
	if e, ok := c.get(key); ok {
		c.hits.add()
		return e.value, e.err
	}
	c.misses.add()
	return c.flight.do(ctx, key, wait, func(ctx context.Context) (any, error) {
		gen := c.gen.Load()
		v, err := load(ctx)
		switch {
		case c.gen.Load() != gen:
			// Flushed meanwhile: the answer may predate the change.
		case err == nil:
			c.put(key, v, time.Duration(c.ttl.Load()))
		case errors.Is(err, ErrNotFound):
			c.putErr(key, err, time.Duration(c.negTTL.Load()))
		}
		return v, err
	})
}

type cacheEntry struct {
	key     string
	value   any
	err     error
	expires time.Time
}

type cacheShard struct {
	mu    sync.Mutex
	max   int
	items map[string]*list.Element
	order *list.List // front = most recently used
}

func (c *Cache) shard(key string) *cacheShard {
	return &c.shards[maphash.String(c.seed, key)%cacheShards]
}

func (c *Cache) get(key string) (*cacheEntry, bool) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.items[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !c.cfg.Now().Before(e.expires) {
		s.order.Remove(el)
		delete(s.items, key)
		return nil, false
	}
	s.order.MoveToFront(el)
	return e, true
}

func (c *Cache) put(key string, v any, ttl time.Duration) { c.store(key, v, nil, ttl) }

func (c *Cache) putErr(key string, err error, ttl time.Duration) { c.store(key, nil, err, ttl) }

func (c *Cache) store(key string, v any, err error, ttl time.Duration) {
	e := &cacheEntry{key: key, value: v, err: err, expires: c.cfg.Now().Add(ttl)}
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.items[key]; ok {
		el.Value = e
		s.order.MoveToFront(el)
		return
	}
	s.items[key] = s.order.PushFront(e)
	for s.order.Len() > s.max {
		last := s.order.Back()
		s.order.Remove(last)
		delete(s.items, last.Value.(*cacheEntry).key)
	}
}

// flightGroup lets concurrent callers of one key share one backend call.
type flightGroup struct {
	mu    sync.Mutex
	calls map[string]*flightCall
}

type flightCall struct {
	done  chan struct{}
	value any
	err   error
	// panicked holds what fn panicked with; it is raised again in each
	// caller, as if the caller had made the call itself.
	panicked any
}

// loadContext is the context of a shared load started by the caller of
// ctx: not cancelled with it, but ending at its deadline, or after wait
// when that comes first. Keeping the deadline keeps the load's place in
// the source's queue (the LDAP pool serves the earliest deadline first).
func loadContext(ctx context.Context, wait time.Duration) (context.Context, context.CancelFunc) {
	lctx, cancel := context.WithoutCancel(ctx), context.CancelFunc(func() {})
	if wait > 0 {
		lctx, cancel = context.WithTimeout(lctx, wait)
	}
	if dl, ok := ctx.Deadline(); ok {
		inner, cancelInner := context.WithDeadline(lctx, dl)
		outer := cancel
		lctx, cancel = inner, func() { cancelInner(); outer() }
	}
	return lctx, cancel
}

// do returns the result of fn for key, starting fn unless a call for key
// is already under way. The call belongs to every caller, not to the one
// that started it: it runs detached from that caller's cancellation (a
// client that hangs up must not fail the others waiting), within that
// caller's deadline and wait (loadContext). Each caller waits until the result, its own ctx, or
// wait plus a grace, whichever comes first, so no caller is held by a call
// that is stuck.
func (g *flightGroup) do(ctx context.Context, key string, wait time.Duration, fn func(context.Context) (any, error)) (any, error) {
	if ctx.Err() != nil {
		return nil, Unavailable("directory lookup", context.Cause(ctx))
	}
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*flightCall{}
	}
	call, ok := g.calls[key]
	if !ok {
		call = &flightCall{done: make(chan struct{})}
		g.calls[key] = call
		lctx, cancel := loadContext(ctx, wait)
		go func() {
			defer func() {
				if r := recover(); r != nil {
					call.panicked = r
				}
				cancel()
				g.mu.Lock()
				delete(g.calls, key)
				g.mu.Unlock()
				close(call.done)
			}()
			call.value, call.err = fn(lctx)
		}()
	}
	g.mu.Unlock()

	var expired <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait + flightGrace)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-call.done:
		if call.panicked != nil {
			panic(call.panicked)
		}
		return call.value, call.err
	case <-ctx.Done():
		return nil, Unavailable("directory lookup", context.Cause(ctx))
	case <-expired:
		return nil, Unavailable("directory lookup", errLookupStuck)
	}
}

type counter struct{ n atomic.Uint64 }

func (c *counter) add()         { c.n.Add(1) }
func (c *counter) load() uint64 { return c.n.Load() }
