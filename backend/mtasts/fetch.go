package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Defaults of a Cache.
const (
	// DefaultFetchTimeout bounds one policy fetch, connection included.
	DefaultFetchTimeout = 30 * time.Second
	// retryFetch is how long a failed fetch is not tried again, so that
	// every message to a domain with a broken policy server does not wait
	// for the timeout.
	retryFetch = 5 * time.Minute
	// maxEntries bounds the cache; expired entries go first.
	maxEntries = 10000
	// refreshAfter is when a cached policy whose record is unchanged is
	// fetched again anyway (or after half its max_age, if sooner), so
	// that a policy is renewed before it expires instead of lapsing
	// between two messages, as RFC 8461 asks of senders.
	refreshAfter = 24 * time.Hour
)

// Cache finds the MTA-STS policy of destination domains: the TXT record
// through LookupTXT, the policy over HTTPS, kept for its max_age and
// fetched again when the record's id changes (RFC 8461 sections 3 and 5).
// The zero value is not usable; LookupTXT is required.
type Cache struct {
	// LookupTXT returns the TXT records at name, each record's strings
	// joined. An error wrapping ErrNoRecord means the name has none
	// (NXDOMAIN, NODATA); other errors are lookup failures.
	LookupTXT func(ctx context.Context, name string) ([]string, error)
	// Dial connects to the policy host (host:port as a URL names it);
	// default a net.Dialer. The queue resolves through its own resolver.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// RootCAs verify the policy host's certificate; nil: the system's.
	RootCAs *x509.CertPool
	// Timeout bounds one fetch. Default DefaultFetchTimeout.
	Timeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// File, when set, keeps the policies across restarts: read at the
	// first Get, rewritten (atomically) after each fetch. Without it a
	// restart forgets them, and an attacker who then hides a domain's
	// TXT record gets its mail without the policy.
	File string
	// Logger receives problems with File; nil discards.
	Logger *slog.Logger

	once    sync.Once
	client  *http.Client
	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	id        string
	policy    *Policy
	fetched   time.Time
	expires   time.Time
	failUntil time.Time // a fetch failed: use what is cached until then
}

// Result is what Get found for a domain.
type Result struct {
	// Policy is the policy in force, nil when the domain has none (or
	// its mode is none).
	Policy *Policy
	// Cached: Policy came from the cache without a fetch.
	Cached bool
	// Err says why no fresh policy could be had (lookup or fetch
	// failure); Policy may still be a cached one. Delivery goes on
	// either way: without a policy it is as if the domain had none
	// (RFC 8461 section 5.1), so Err is for the log only.
	Err error
}

func (c *Cache) init() {
	c.once.Do(func() {
		if c.Timeout <= 0 {
			c.Timeout = DefaultFetchTimeout
		}
		if c.Now == nil {
			c.Now = time.Now
		}
		dial := c.Dial
		if dial == nil {
			d := &net.Dialer{}
			dial = d.DialContext
		}
		c.entries = make(map[string]*entry)
		if c.Logger == nil {
			c.Logger = slog.New(slog.DiscardHandler)
		}
		c.load()
		c.client = &http.Client{
			Timeout: c.Timeout,
			Transport: &http.Transport{
				DialContext:         dial,
				TLSClientConfig:     &tls.Config{RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12},
				TLSHandshakeTimeout: c.Timeout,
				DisableKeepAlives:   true,
				// RFC 8461 section 3.3: no HTTP proxy is mentioned, and
				// an environment proxy would change who we trust.
				Proxy: nil,
			},
			// Section 3.3: redirects MUST NOT be followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	})
}

// Get returns the policy for domain (lower case, no trailing dot).
func (c *Cache) Get(ctx context.Context, domain string) Result {
	c.init()
	now := c.Now()
	c.mu.Lock()
	e := c.entries[domain]
	var cached *Policy
	var cachedID string
	stale := false
	if e != nil && now.Before(e.expires) {
		cached, cachedID = e.policy, e.id
		stale = !now.Before(e.fetched.Add(min(refreshAfter, e.policy.MaxAge/2)))
	}
	backoff := e != nil && now.Before(e.failUntil)
	c.mu.Unlock()

	txts, err := c.LookupTXT(ctx, "_mta-sts."+domain)
	var rec Record
	if err == nil {
		rec, err = FindRecord(txts)
	}
	if err != nil {
		if errors.Is(err, ErrNoRecord) {
			// A policy still in its max_age stays in force without the
			// record (section 5.1); without one there is no policy.
			err = nil
		}
		return Result{Policy: active(cached), Cached: cached != nil, Err: err}
	}
	if cached != nil && cachedID == rec.ID && (!stale || backoff) {
		return Result{Policy: active(cached), Cached: true}
	}
	if backoff {
		return Result{Policy: active(cached), Cached: cached != nil, Err: errors.New("mta-sts: policy fetch failed recently, not retried yet")}
	}
	p, err := c.fetch(ctx, domain)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if e := c.entries[domain]; e != nil {
			e.failUntil = now.Add(retryFetch)
		} else {
			c.store(domain, &entry{failUntil: now.Add(retryFetch)}, now)
		}
		return Result{Policy: active(cached), Cached: cached != nil, Err: err}
	}
	c.store(domain, &entry{id: rec.ID, policy: p, fetched: now, expires: now.Add(p.MaxAge)}, now)
	c.save(now)
	return Result{Policy: active(p)}
}

// savedEntry is one policy in File.
type savedEntry struct {
	ID      string    `json:"id"`
	Policy  string    `json:"policy"` // as served: one parser reads both
	Fetched time.Time `json:"fetched"`
	Expires time.Time `json:"expires"`
}

// load reads File; a missing file is an empty cache, a bad one is
// logged and ignored (the policies are fetched again).
func (c *Cache) load() {
	if c.File == "" {
		return
	}
	b, err := os.ReadFile(c.File)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var saved map[string]savedEntry
	if err == nil {
		err = json.Unmarshal(b, &saved)
	}
	if err != nil {
		c.Logger.Warn("mta-sts: policy cache unreadable, starting empty", "file", c.File, "err", err)
		return
	}
	now := c.Now()
	for domain, s := range saved {
		p, err := ParsePolicy([]byte(s.Policy))
		if err != nil || !now.Before(s.Expires) {
			continue
		}
		c.entries[domain] = &entry{id: s.ID, policy: p, fetched: s.Fetched, expires: s.Expires}
	}
}

// save writes the live policies to File; caller holds c.mu.
func (c *Cache) save(now time.Time) {
	if c.File == "" {
		return
	}
	saved := make(map[string]savedEntry, len(c.entries))
	for domain, e := range c.entries {
		if e.policy != nil && now.Before(e.expires) {
			saved[domain] = savedEntry{ID: e.id, Policy: string(e.policy.Format()), Fetched: e.fetched, Expires: e.expires}
		}
	}
	b, err := json.Marshal(saved)
	if err == nil {
		tmp := c.File + ".tmp"
		if err = os.WriteFile(tmp, b, 0o600); err == nil {
			err = os.Rename(tmp, c.File)
		}
	}
	if err != nil {
		c.Logger.Warn("mta-sts: cannot save the policy cache", "file", c.File, "err", err)
	}
}

// active is the policy to apply: mode none is no policy.
func active(p *Policy) *Policy {
	if p == nil || p.Mode == None {
		return nil
	}
	return p
}

// store keeps an entry; caller holds c.mu.
func (c *Cache) store(domain string, e *entry, now time.Time) {
	if len(c.entries) >= maxEntries {
		for d, old := range c.entries {
			if !now.Before(old.expires) && !now.Before(old.failUntil) {
				delete(c.entries, d)
			}
		}
		if len(c.entries) >= maxEntries {
			return // full of live policies: do without caching this one
		}
	}
	c.entries[domain] = e
}

// fetch gets and parses https://mta-sts.DOMAIN/.well-known/mta-sts.txt:
// a verified certificate for that name, status 200, text/plain, at most
// MaxPolicyBytes, within the timeout.
func (c *Cache) fetch(ctx context.Context, domain string) (*Policy, error) {
	u := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("mta-sts: fetch %s: %w", u, err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mta-sts: fetch %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mta-sts: fetch %s: HTTP status %s", u, resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || !strings.EqualFold(mt, "text/plain") {
		return nil, fmt.Errorf("mta-sts: fetch %s: content type %q is not text/plain", u, trim(resp.Header.Get("Content-Type")))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("mta-sts: fetch %s: %w", u, err)
	}
	p, err := ParsePolicy(body)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u, err)
	}
	return p, nil
}
