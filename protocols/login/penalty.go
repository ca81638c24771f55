package login

import (
	"container/list"
	"net/netip"
	"time"
)

// record is the recent failures of one account or client network.
type record struct {
	failures int
	last     time.Time // of the last failure
}

// pair is a client network that logged in to an account.
type pair struct {
	network netip.Prefix
	account string
}

// admit decides how long an attempt must wait before it runs: until the
// last failure of its account, and of its client network, plus the delay
// their failure counts call for. A trusted pair (the network logged in to
// this account recently and has not failed there since) does not wait.
func (s *Service) admit(network netip.Prefix, account string) (trusted bool, wait time.Duration) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.trusted.get(pair{network, account}); ok && now.Sub(at) <= s.cfg.TrustFor {
		return true, 0
	}
	if network.IsValid() {
		if r, ok := s.networks.get(network); ok {
			wait = max(wait, s.until(r, now))
		}
	}
	if r, ok := s.accounts.get(account); ok {
		wait = max(wait, s.until(r, now))
	}
	return false, wait
}

// until is how long from now an attempt under r must wait.
func (s *Service) until(r record, now time.Time) time.Duration {
	if now.Sub(r.last) > s.cfg.PenaltyWindow {
		return 0
	}
	return max(0, r.last.Add(s.delay(r.failures)).Sub(now))
}

// delay is the penalty after n failures: nothing for the free ones, then
// PenaltyBase doubling with each failure, never more than PenaltyCap.
func (s *Service) delay(n int) time.Duration {
	n -= s.cfg.PenaltyFreeFailures
	if n <= 0 {
		return 0
	}
	d := s.cfg.PenaltyBase
	for ; n > 1 && d < s.cfg.PenaltyCap; n-- {
		d *= 2
	}
	return min(d, s.cfg.PenaltyCap)
}

// failed counts a refused attempt against its account and client network,
// and ends the pair's trust: a network that fails is no longer known to
// hold the password.
func (s *Service) failed(network netip.Prefix, account string) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	bump := func(r record, ok bool) record {
		if !ok || now.Sub(r.last) > s.cfg.PenaltyWindow {
			r = record{}
		}
		r.failures++
		r.last = now
		return r
	}
	r, ok := s.accounts.get(account)
	s.accounts.put(account, bump(r, ok))
	if network.IsValid() {
		r, ok := s.networks.get(network)
		s.networks.put(network, bump(r, ok))
	}
	s.trusted.remove(pair{network, account})
}

// succeeded trusts the pair. Failure counts stay: a success must not hand
// a guesser who owns one account, or who guesses alongside the owner's
// phone, a fresh budget; the owner's network skips them through trust.
func (s *Service) succeeded(network netip.Prefix, account string) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trusted.put(pair{network, account}, now)
}

// table is a map bounded to max entries; when full, the least recently
// put entry goes. Reads do not refresh an entry: what keeps a failure
// record or a trust alive is a new failure or success, not lookups.
type table[K comparable, V any] struct {
	max   int
	items map[K]*list.Element // of *entry[K, V]
	order *list.List          // front: most recently put
}

type entry[K comparable, V any] struct {
	key   K
	value V
}

func newTable[K comparable, V any](max int) *table[K, V] {
	return &table[K, V]{max: max, items: map[K]*list.Element{}, order: list.New()}
}

func (t *table[K, V]) get(k K) (V, bool) {
	if el, ok := t.items[k]; ok {
		return el.Value.(*entry[K, V]).value, true
	}
	var zero V
	return zero, false
}

func (t *table[K, V]) put(k K, v V) {
	if el, ok := t.items[k]; ok {
		el.Value.(*entry[K, V]).value = v
		t.order.MoveToFront(el)
		return
	}
	if len(t.items) >= t.max {
		t.remove(t.order.Back().Value.(*entry[K, V]).key)
	}
	t.items[k] = t.order.PushFront(&entry[K, V]{k, v})
}

func (t *table[K, V]) remove(k K) {
	if el, ok := t.items[k]; ok {
		delete(t.items, k)
		t.order.Remove(el)
	}
}

func (t *table[K, V]) len() int { return len(t.items) }
