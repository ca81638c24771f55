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
// backend is back. Concurrent identical lookups share one round trip.
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

	hits, misses counter
}

// NewCache wraps the sources; either may be nil when not used.
func NewCache(accounts AccountSource, domains DomainSource, cfg CacheConfig) *Cache {
	c := &Cache{accounts: accounts, domains: domains, cfg: cfg.withDefaults(), seed: maphash.MakeSeed()}
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

// Flush forgets everything (after an admin change).
func (c *Cache) Flush() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.items = map[string]*list.Element{}
		s.order.Init()
		s.mu.Unlock()
	}
}

type cachedAccounts struct{ c *Cache }

func (a cachedAccounts) LookupAccount(ctx context.Context, address string) (*Account, error) {
	v, err := a.c.lookup(ctx, "a\x00"+address, func(ctx context.Context) (any, error) {
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
	acct, err := c.accounts.Authenticate(ctx, address, password)
	switch {
	case err == nil:
		cp := *acct
		c.put(key, authEntry{mac: mac, acct: &cp}, c.cfg.TTL)
	case errors.Is(err, ErrBadCredentials):
		c.put(key, authEntry{mac: mac}, c.cfg.NegativeTTL)
	}
	return acct, err
}

type cachedDomains struct{ c *Cache }

func (d cachedDomains) LookupDomain(ctx context.Context, name string) (*Domain, error) {
	v, err := d.c.lookup(ctx, "d\x00"+name, func(ctx context.Context) (any, error) {
		return d.c.domains.LookupDomain(ctx, name)
	})
	if err != nil {
		return nil, err
	}
	dom := *v.(*Domain)
	return &dom, nil
}

func (d cachedDomains) LookupAliases(ctx context.Context, source string) ([]string, error) {
	v, err := d.c.lookup(ctx, "l\x00"+source, func(ctx context.Context) (any, error) {
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
	v, err := s.c.lookup(ctx, "s\x00"+key, func(ctx context.Context) (any, error) {
		logins, err := s.m.SenderLogins(ctx, key)
		return logins, err
	})
	if err != nil {
		return nil, err
	}
	return append([]string(nil), v.([]string)...), nil
}

// lookup serves key from the cache, or loads it once however many callers
// ask at the same moment. Not-found answers are cached as negatives.
func (c *Cache) lookup(ctx context.Context, key string, load func(context.Context) (any, error)) (any, error) {
	if e, ok := c.get(key); ok {
		c.hits.add()
		return e.value, e.err
	}
	c.misses.add()
	return c.flight.do(ctx, key, func() (any, error) {
		v, err := load(ctx)
		switch {
		case err == nil:
			c.put(key, v, c.cfg.TTL)
		case errors.Is(err, ErrNotFound):
			c.putErr(key, err, c.cfg.NegativeTTL)
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
}

func (g *flightGroup) do(ctx context.Context, key string, fn func() (any, error)) (any, error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*flightCall{}
	}
	if call, ok := g.calls[key]; ok {
		g.mu.Unlock()
		select {
		case <-call.done:
			return call.value, call.err
		case <-ctx.Done():
			return nil, Unavailable("directory lookup", ctx.Err())
		}
	}
	call := &flightCall{done: make(chan struct{})}
	g.calls[key] = call
	g.mu.Unlock()

	call.value, call.err = fn()
	g.mu.Lock()
	delete(g.calls, key)
	g.mu.Unlock()
	close(call.done)
	return call.value, call.err
}

type counter struct{ n atomic.Uint64 }

func (c *counter) add()         { c.n.Add(1) }
func (c *counter) load() uint64 { return c.n.Load() }
