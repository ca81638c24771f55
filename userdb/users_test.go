package userdb

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memSource isolates the resolution and cache logic from any backend; the
// same behaviour is exercised against slapd, MariaDB and SQLite in
// userdb/compose_test.go.
type memSource struct {
	mu        sync.Mutex
	accounts  map[string]*Account
	passwords map[string]string
	domains   map[string]*Domain
	aliases   map[string][]string
	senders   map[string][]string // sender map key → logins
	down      bool
	calls     atomic.Int64
}

func newMem() *memSource {
	return &memSource{accounts: map[string]*Account{}, passwords: map[string]string{}, domains: map[string]*Domain{}, aliases: map[string][]string{}, senders: map[string][]string{}}
}

func (m *memSource) LookupAccount(ctx context.Context, a string) (*Account, error) {
	m.calls.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, Unavailable("mem", errors.New("down"))
	}
	acct, ok := m.accounts[a]
	if !ok {
		return nil, ErrNotFound
	}
	cp := *acct
	return &cp, nil
}

func (m *memSource) Authenticate(ctx context.Context, a, pw string) (*Account, error) {
	acct, err := m.LookupAccount(ctx, a)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.passwords[a] != pw {
		return nil, ErrBadCredentials
	}
	return acct, nil
}

func (m *memSource) LookupDomain(ctx context.Context, n string) (*Domain, error) {
	m.calls.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, Unavailable("mem", errors.New("down"))
	}
	d, ok := m.domains[n]
	if !ok {
		return nil, ErrNotFound
	}
	cp := *d
	return &cp, nil
}

func (m *memSource) LookupAliases(ctx context.Context, s string) ([]string, error) {
	m.calls.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, Unavailable("mem", errors.New("down"))
	}
	return m.aliases[s], nil
}

func (m *memSource) SenderLogins(ctx context.Context, key string) ([]string, error) {
	m.calls.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, Unavailable("mem", errors.New("down"))
	}
	return m.senders[key], nil
}

func testUsers() (*Users, *memSource) {
	m := newMem()
	m.domains["example.com"] = &Domain{Name: "example.com", Active: true, Quota: Limit{Bytes: 1000}}
	m.domains["example.net"] = &Domain{Name: "example.net", Active: true, AliasFor: "example.com"}
	m.domains["catch.org"] = &Domain{Name: "catch.org", Active: true, CatchAll: "bob@example.com"}
	m.domains["off.org"] = &Domain{Name: "off.org", Active: false}
	for _, a := range []string{"alice@example.com", "bob@example.com", "zed@off.org"} {
		m.accounts[a] = &Account{Address: a, Active: true}
		m.passwords[a] = "secret-" + strings.Split(a, "@")[0]
	}
	m.accounts["carol@example.com"] = &Account{Address: "carol@example.com", Active: false}
	m.passwords["carol@example.com"] = "secret-carol"
	m.accounts["bob@example.com"].Quota = &Limit{Bytes: 5000, Messages: 10}
	m.aliases["sales@example.com"] = []string{"alice@example.com", "bob@example.com"}
	m.aliases["team@example.com"] = []string{"sales@example.com", "alice@example.com", "friend@remote.test"}
	m.aliases["keep@example.com"] = []string{"keep@example.com"}
	m.accounts["keep@example.com"] = &Account{Address: "keep@example.com", Active: true}
	m.aliases["copy@example.com"] = []string{"copy@example.com", "bob@example.com"}
	m.accounts["copy@example.com"] = &Account{Address: "copy@example.com", Active: true}
	m.aliases["loop1@example.com"] = []string{"loop2@example.com"}
	m.aliases["loop2@example.com"] = []string{"loop3@example.com"}
	m.aliases["loop3@example.com"] = []string{"loop1@example.com"}
	m.aliases["@example.com"] = nil
	return &Users{Accounts: m, Domains: m, DefaultDomain: "example.com", RecipientDelimiter: "+"}, m
}

func TestResolve(t *testing.T) {
	u, m := testUsers()
	m.aliases["@catch.org"] = nil
	ctx := context.Background()
	local := func(a string) Destination { return Destination{Address: a, Local: true} }
	tests := []struct {
		in   string
		want []Destination
		err  error
	}{
		{"alice@example.com", []Destination{local("alice@example.com")}, nil},
		{"ALICE@Example.COM", []Destination{local("alice@example.com")}, nil},
		{"alice@example.net", []Destination{local("alice@example.com")}, nil},
		{"alice+news@example.com", []Destination{{Address: "alice@example.com", Local: true, Detail: "news"}}, nil},
		{"sales+x@example.com", []Destination{{Address: "alice@example.com", Local: true, Detail: "x"}, {Address: "bob@example.com", Local: true, Detail: "x"}}, nil},
		{"sales@example.com", []Destination{local("alice@example.com"), local("bob@example.com")}, nil},
		{"team@example.com", []Destination{local("alice@example.com"), local("bob@example.com"), {Address: "friend@remote.test"}}, nil},
		{"keep@example.com", []Destination{local("keep@example.com")}, nil},
		{"copy@example.com", []Destination{local("copy@example.com"), local("bob@example.com")}, nil},
		{"anyone@catch.org", []Destination{local("bob@example.com")}, nil},
		{"someone@remote.test", []Destination{{Address: "someone@remote.test"}}, nil},
		{"nobody@example.com", nil, ErrNotFound},
		{"carol@example.com", nil, ErrDisabled},
		{"zed@off.org", nil, ErrDisabled},
		{"loop1@example.com", nil, ErrAliasLoop},
		{"a%b@example.com", nil, ErrInvalid},
		{"x!y@example.com", nil, ErrInvalid},
		{"\"a@b\"@example.com", nil, ErrInvalid},
		{"a@@example.com", nil, ErrInvalid},
		{"a@example.com.", nil, ErrInvalid},
		{"a@[127.0.0.1]", nil, ErrInvalid},
		{"a\x00@example.com", nil, ErrInvalid},
		{strings.Repeat("a", 10000) + "@example.com", nil, ErrInvalid},
	}
	for _, tt := range tests {
		got, err := u.Resolve(ctx, tt.in)
		if !errors.Is(err, tt.err) {
			t.Errorf("Resolve(%.40q) error = %v, want %v", tt.in, err, tt.err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Resolve(%.40q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestMailbox: the inverse of DetailAddress finds the mailbox (and tag) an
// address names without expanding the aliases that Resolve would.
func TestMailbox(t *testing.T) {
	u, m := testUsers()
	m.accounts["dan+x@example.com"] = &Account{Address: "dan+x@example.com", Active: true}
	ctx := context.Background()
	tests := []struct {
		in   string
		want Destination
		err  error
	}{
		{"alice@example.com", Destination{Address: "alice@example.com", Local: true}, nil},
		{"Alice@Example.COM", Destination{Address: "alice@example.com", Local: true}, nil},
		{"alice+news@example.com", Destination{Address: "alice@example.com", Local: true, Detail: "news"}, nil},
		{u.DetailAddress("bob@example.com", "a+b"), Destination{Address: "bob@example.com", Local: true, Detail: "a+b"}, nil},
		// An account that is also an alias: the account alone.
		{"copy@example.com", Destination{Address: "copy@example.com", Local: true}, nil},
		{"copy+tag@example.com", Destination{Address: "copy@example.com", Local: true, Detail: "tag"}, nil},
		// A plus in an account's own name wins over the tag.
		{"dan+x@example.com", Destination{Address: "dan+x@example.com", Local: true}, nil},
		{"sales@example.com", Destination{}, ErrNotFound},
		{"anyone@catch.org", Destination{}, ErrNotFound},
		{"alice@example.net", Destination{}, ErrNotFound},
		{"nobody@example.com", Destination{}, ErrNotFound},
		{"carol@example.com", Destination{}, ErrDisabled},
		{"zed@off.org", Destination{}, ErrDisabled},
		{"a@@example.com", Destination{}, ErrInvalid},
	}
	for _, tt := range tests {
		got, err := u.Mailbox(ctx, tt.in)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("Mailbox(%q) = %+v, %v; want %+v, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	m.down = true
	if _, err := u.Mailbox(ctx, "alice@example.com"); !Temporary(err) {
		t.Errorf("directory down: %v, want a temporary error", err)
	}
}

func TestResolveLoopIsReported(t *testing.T) {
	u, _ := testUsers()
	_, err := u.Resolve(context.Background(), "loop2@example.com")
	if !errors.Is(err, ErrAliasLoop) || !strings.Contains(err.Error(), "loop2@example.com → loop3@example.com → loop1@example.com → loop2@example.com") {
		t.Fatalf("loop error = %v", err)
	}
}

func TestResolveDeepChainAndFanOut(t *testing.T) {
	u, m := testUsers()
	for i := 0; i < MaxAliasDepth+5; i++ {
		m.aliases["d"+itoa(i)+"@example.com"] = []string{"d" + itoa(i+1) + "@example.com"}
	}
	if _, err := u.Resolve(context.Background(), "d0@example.com"); !errors.Is(err, ErrAliasLoop) {
		t.Fatalf("deep chain: %v", err)
	}
	var many []string
	for i := 0; i < MaxDestinations+1; i++ {
		many = append(many, "r"+itoa(i)+"@remote.test")
	}
	m.aliases["all@example.com"] = many
	if _, err := u.Resolve(context.Background(), "all@example.com"); !errors.Is(err, ErrAliasLoop) {
		t.Fatalf("fan-out: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestAuthenticate(t *testing.T) {
	u, m := testUsers()
	ctx := context.Background()
	tests := []struct {
		login, pw string
		err       error
	}{
		{"alice@example.com", "secret-alice", nil},
		{"Alice@EXAMPLE.com", "secret-alice", nil},
		{"alice", "secret-alice", nil}, // default domain
		{"alice@example.com", "wrong", ErrBadCredentials},
		{"alice@example.com", "", ErrBadCredentials},
		{"alice@example.com", "secret-alice\x00", ErrBadCredentials},
		{"nobody@example.com", "x", ErrBadCredentials},
		{"carol@example.com", "secret-carol", ErrDisabled},
		{"zed@off.org", "secret-zed", ErrDisabled},
		{"*", "x", ErrBadCredentials},
		{"*)(uid=*))(|(uid=*", "x", ErrBadCredentials},
		{"' OR '1'='1", "' OR '1'='1", ErrBadCredentials},
		{"alice@example.com' -- ", "x", ErrBadCredentials},
		{"alice\x00@example.com", "secret-alice", ErrBadCredentials},
		{strings.Repeat("x", 10240), strings.Repeat("y", 10240), ErrBadCredentials},
	}
	for _, tt := range tests {
		acct, err := u.Authenticate(ctx, tt.login, tt.pw)
		if !errors.Is(err, tt.err) {
			t.Errorf("Authenticate(%.30q) error = %v, want %v", tt.login, err, tt.err)
		}
		if err == nil && acct.Address != "alice@example.com" {
			t.Errorf("Authenticate(%q) = %s", tt.login, acct.Address)
		}
	}
	m.down = true
	if _, err := u.Authenticate(ctx, "alice@example.com", "secret-alice"); !Temporary(err) || errors.Is(err, ErrBadCredentials) {
		t.Errorf("directory down: %v, want temporary", err)
	}
	if _, err := u.Resolve(ctx, "alice@example.com"); !Temporary(err) {
		t.Errorf("resolve with directory down: %v, want temporary", err)
	}
	if _, err := u.IsLocalDomain(ctx, "example.com"); !Temporary(err) {
		t.Errorf("domain with directory down: %v, want temporary", err)
	}
}

func TestQuotaLimit(t *testing.T) {
	u, _ := testUsers()
	ctx := context.Background()
	if l, err := u.QuotaLimit(ctx, "bob@example.com"); err != nil || l != (Limit{Bytes: 5000, Messages: 10}) {
		t.Errorf("own limit = %v, %v", l, err)
	}
	if l, err := u.QuotaLimit(ctx, "alice@example.com"); err != nil || l != (Limit{Bytes: 1000}) {
		t.Errorf("domain default = %v, %v", l, err)
	}
	if ok, _ := u.IsLocalDomain(ctx, "EXAMPLE.net"); !ok {
		t.Error("alias domain is local")
	}
	if ok, _ := u.IsLocalDomain(ctx, "off.org"); ok {
		t.Error("disabled domain is not local")
	}
	if ok, _ := u.IsLocalDomain(ctx, "remote.test"); ok {
		t.Error("remote domain is not local")
	}
}

func TestCache(t *testing.T) {
	u, m := testUsers()
	now := time.Unix(1e9, 0)
	// No size bound here: with 2 entries per shard, an entry the test
	// checks could be evicted by another that its random shard seed put
	// beside it. The bound has its own cache below.
	c := NewCache(m, m, CacheConfig{TTL: time.Minute, NegativeTTL: 5 * time.Second, Now: func() time.Time { return now }})
	u.Accounts, u.Domains = c.Accounts(), c.Domains()
	ctx := context.Background()

	if _, err := u.Authenticate(ctx, "alice", "secret-alice"); err != nil {
		t.Fatal(err)
	}
	before := m.calls.Load()
	for i := 0; i < 100; i++ {
		if _, err := u.Authenticate(ctx, "alice@example.com", "secret-alice"); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.calls.Load() - before; got != 0 {
		t.Errorf("cached logins made %d backend calls", got)
	}
	// A wrong password is never answered from a positive entry.
	if _, err := u.Authenticate(ctx, "alice@example.com", "guess"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("wrong password through cache: %v", err)
	}

	// Password change: the old one keeps working at most until the TTL.
	m.mu.Lock()
	m.passwords["alice@example.com"] = "new-secret"
	m.mu.Unlock()
	now = now.Add(time.Minute + time.Second)
	if _, err := u.Authenticate(ctx, "alice@example.com", "secret-alice"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password after TTL: %v", err)
	}
	if _, err := u.Authenticate(ctx, "alice@example.com", "new-secret"); err != nil {
		t.Errorf("new password: %v", err)
	}

	// Negative answers are cached, but only for NegativeTTL.
	if _, err := u.Resolve(ctx, "ghost@example.com"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.accounts["ghost@example.com"] = &Account{Address: "ghost@example.com", Active: true}
	m.mu.Unlock()
	if _, err := u.Resolve(ctx, "ghost@example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("negative entry not used: %v", err)
	}
	now = now.Add(6 * time.Second)
	if _, err := u.Resolve(ctx, "ghost@example.com"); err != nil {
		t.Errorf("after negative TTL: %v", err)
	}

	// Outages are never cached.
	now = now.Add(2 * time.Minute)
	m.mu.Lock()
	m.down = true
	m.mu.Unlock()
	if _, err := u.Account(ctx, "bob@example.com"); !Temporary(err) {
		t.Fatalf("down: %v", err)
	}
	m.mu.Lock()
	m.down = false
	m.mu.Unlock()
	if _, err := u.Account(ctx, "bob@example.com"); err != nil {
		t.Errorf("after outage: %v", err)
	}

	if h, _ := c.Stats(); h == 0 {
		t.Error("no hits counted")
	}

	// Bounded size.
	small := NewCache(m, m, CacheConfig{MaxEntries: 64})
	u.Accounts, u.Domains = small.Accounts(), small.Domains()
	for i := 0; i < 1000; i++ {
		u.Resolve(ctx, "n"+itoa(i)+"@example.com")
	}
	total := 0
	for i := range small.shards {
		total += small.shards[i].order.Len()
	}
	if total > 64+cacheShards {
		t.Errorf("cache holds %d entries, bound 64", total)
	}
}

func TestCacheConcurrentLookupsShareOneCall(t *testing.T) {
	m := newMem()
	m.accounts["a@example.com"] = &Account{Address: "a@example.com", Active: true}
	slow := &slowSource{memSource: m, gate: make(chan struct{})}
	c := NewCache(slow, m, CacheConfig{})
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Accounts().LookupAccount(context.Background(), "a@example.com"); err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(slow.gate)
	wg.Wait()
	if n := slow.n.Load(); n > 2 {
		t.Errorf("%d backend calls for 50 concurrent lookups", n)
	}
}

type slowSource struct {
	*memSource
	gate chan struct{}
	n    atomic.Int64
}

func (s *slowSource) LookupAccount(ctx context.Context, a string) (*Account, error) {
	s.n.Add(1)
	<-s.gate
	return s.memSource.LookupAccount(ctx, a)
}

// TestMaySendAsCache: sender rights are answered from the cache after the
// first lookup, a new grant shows within the TTL, and an outage is never
// remembered.
func TestMaySendAsCache(t *testing.T) {
	u, m := testUsers()
	m.senders["press@example.com"] = []string{"alice@example.com"}
	now := time.Unix(1e9, 0)
	c := NewCache(m, m, CacheConfig{TTL: time.Minute, Now: func() time.Time { return now }})
	u.Accounts, u.Domains, u.Senders = c.Accounts(), c.Domains(), c.Senders(m)
	ctx := context.Background()
	may := func(account, address string) bool {
		t.Helper()
		ok, err := u.MaySendAs(ctx, account, address)
		if err != nil {
			t.Fatalf("MaySendAs(%s, %s): %v", account, address, err)
		}
		return ok
	}
	if !may("alice@example.com", "press@example.com") || may("bob@example.com", "press@example.com") {
		t.Fatal("wrong answer from the map")
	}
	before := m.calls.Load()
	for i := 0; i < 10; i++ {
		may("alice@example.com", "press@example.com")
		may("alice@example.com", "alice+x@example.net")
	}
	if got := m.calls.Load() - before; got > 1 {
		t.Errorf("cached sender checks made %d backend calls", got)
	}
	// Catch-alls and aliases are delivery, not sender rights.
	if may("bob@example.com", "anyone@catch.org") || may("alice@example.com", "sales@example.com") {
		t.Error("catch-all owner or alias member may send as the address it receives")
	}

	m.mu.Lock()
	m.senders["press@example.com"] = append(m.senders["press@example.com"], "bob@example.com")
	m.down = true
	m.mu.Unlock()
	if ok, err := u.MaySendAs(ctx, "bob@example.com", "press@example.com"); ok || err != nil {
		t.Errorf("cached answer during an outage: %v, %v", ok, err)
	}
	now = now.Add(time.Minute + time.Second)
	if ok, err := u.MaySendAs(ctx, "bob@example.com", "press@example.com"); ok || !Temporary(err) {
		t.Errorf("outage after the TTL: %v, %v; want a temporary error", ok, err)
	}
	m.mu.Lock()
	m.down = false
	m.mu.Unlock()
	if !may("bob@example.com", "press@example.com") {
		t.Error("new grant not seen once the directory is back")
	}
}

// TestDetailAddress: the address a retry is queued as resolves back to the
// mailbox with its tag.
func TestDetailAddress(t *testing.T) {
	for _, tt := range []struct {
		delim, addr, detail, want string
	}{
		{"+", "alice@example.com", "news", "alice+news@example.com"},
		{"+", "alice@example.com", "", "alice@example.com"},
		{"", "alice@example.com", "news", "alice@example.com"},
		{"-", "alice@example.com", "a-b", "alice-a-b@example.com"},
	} {
		u := &Users{RecipientDelimiter: tt.delim}
		if got := u.DetailAddress(tt.addr, tt.detail); got != tt.want {
			t.Errorf("%q %q %q: %q, want %q", tt.delim, tt.addr, tt.detail, got, tt.want)
		}
	}
}
