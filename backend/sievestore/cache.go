package sievestore

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/vmaild/vmaild/backend/sieve"
)

// Cache holds compiled scripts by file, so a script is compiled once and
// again only when its file changes (size, modification time or inode,
// which a Put's rename always changes). Safe for concurrent use.
type Cache struct {
	// Options compile every script.
	Options sieve.Options
	// Max bounds the entries; 0 is 10000. When full, the entries unused
	// the longest are dropped.
	Max int

	mu      sync.Mutex
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	size  int64
	mtime time.Time
	ino   uint64
	used  time.Time
	// script or err is the compile's outcome: a broken script is not
	// compiled again for every message either.
	script *sieve.Script
	err    error
}

// Load returns the compiled script in path, compiling it on first use or
// after it changed. A compile error is a *sieve.Error.
func (c *Cache) Load(path string) (*sieve.Script, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[path]
	if ok && e.size == fi.Size() && e.mtime.Equal(fi.ModTime()) && e.ino == ino {
		e.used = now
		c.mu.Unlock()
		return e.script, e.err
	}
	c.mu.Unlock()

	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, cerr := sieve.Compile(src, c.Options)
	if cerr != nil {
		cerr = fmt.Errorf("%s: %w", path, cerr)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*cacheEntry{}
	}
	c.evict()
	c.entries[path] = &cacheEntry{size: fi.Size(), mtime: fi.ModTime(), ino: ino, used: now, script: s, err: cerr}
	return s, cerr
}

// evict drops the oldest tenth when the cache is full.
func (c *Cache) evict() {
	max := c.Max
	if max <= 0 {
		max = 10000
	}
	if len(c.entries) < max {
		return
	}
	var cutoff time.Time
	ages := make([]time.Time, 0, len(c.entries))
	for _, e := range c.entries {
		ages = append(ages, e.used)
	}
	slices.SortFunc(ages, func(a, b time.Time) int { return a.Compare(b) })
	cutoff = ages[len(ages)/10]
	for p, e := range c.entries {
		if !e.used.After(cutoff) {
			delete(c.entries, p)
		}
	}
}
