package imap

import (
	"net/netip"
	"sync"
)

// Default caps of COMPRESS=DEFLATE sessions. Each holds flate's
// compressor, some 800 KB, for the connection's life (package compress),
// so 2,000 of them are about 1.6 GB: a server with tens of thousands of
// idle connections cannot let each of them compress. A client network
// may hold 10, which covers a household of clients.
const (
	DefaultMaxCompressed           = 2000
	DefaultMaxCompressedPerNetwork = 10
)

// compressCap counts compressed sessions, in total and per client
// network; past a cap COMPRESS is refused with NO [LIMIT] and the session
// goes on uncompressed.
type compressCap struct {
	mu      sync.Mutex
	total   int
	network map[netip.Prefix]int
}

func (cc *compressCap) acquire(n netip.Prefix, maxTotal, maxNetwork int) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.total >= maxTotal || cc.network[n] >= maxNetwork {
		return false
	}
	if cc.network == nil {
		cc.network = map[netip.Prefix]int{}
	}
	cc.total++
	cc.network[n]++
	return true
}

func (cc *compressCap) release(n netip.Prefix) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.total--
	if cc.network[n]--; cc.network[n] <= 0 {
		delete(cc.network, n)
	}
}
