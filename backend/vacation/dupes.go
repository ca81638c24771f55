package vacation

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"
)

// DupesFile is the file in each mail home that remembers whom a vacation
// reply went to, as Pigeonhole's .dovecot.lda-dupes does. It lives beside
// the Maildir, so it works whatever the directory backend is, moves with
// the mailbox and is gone with it.
const DupesFile = ".vmaild.vacation-dupes"

// DefaultMaxEntries bounds one user's file: past it the entries that
// expire first are dropped (a second reply sooner than promised rather
// than a file that grows without end).
const DefaultMaxEntries = 10000

// Dupes remembers, per mail home, the replies sent and until when another
// is not due. A line is "<expiry unix seconds> <sha256 hex of the key>":
// no address is stored in clear.
type Dupes struct {
	// MaxEntries bounds each file; 0 is DefaultMaxEntries.
	MaxEntries int

	// mu serialises every file's read-modify-write: the daemon is the
	// only writer, and replies are rare enough for one lock.
	mu sync.Mutex
}

// Seen says whether key is in home's file and not expired at now: a
// reply is not due.
func (d *Dupes) Seen(home, key string, now time.Time) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	entries, err := readDupes(filepath.Join(home, DupesFile))
	if err != nil {
		return false, err
	}
	exp, ok := entries[hashKey(key)]
	return ok && exp > now.Unix(), nil
}

// Record puts key in home's file until now+period, dropping expired
// entries and, past MaxEntries, those that expire first.
func (d *Dupes) Record(home, key string, now time.Time, period time.Duration) error {
	path := filepath.Join(home, DupesFile)
	d.mu.Lock()
	defer d.mu.Unlock()
	entries, err := readDupes(path)
	if err != nil {
		return err
	}
	t := now.Unix()
	for k, exp := range entries {
		if exp <= t {
			delete(entries, k)
		}
	}
	entries[hashKey(key)] = now.Add(period).Unix()
	return writeDupes(path, entries, d.max())
}

func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func (d *Dupes) max() int {
	if d.MaxEntries > 0 {
		return d.MaxEntries
	}
	return DefaultMaxEntries
}

// readDupes reads a file; a missing one is empty, a line that does not
// parse is skipped (the file is only a memory of courtesy).
func readDupes(path string) (map[string]int64, error) {
	entries := map[string]int64{}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return entries, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vacation dupes: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		exp, id, ok := bytes.Cut(sc.Bytes(), []byte{' '})
		if !ok || len(id) != sha256.Size*2 {
			continue
		}
		n, err := strconv.ParseInt(string(exp), 10, 64)
		if err != nil {
			continue
		}
		entries[string(id)] = n
	}
	return entries, nil
}

// writeDupes replaces the file with at most max entries, those that
// expire last, through a temporary file and a rename.
func writeDupes(path string, entries map[string]int64, max int) error {
	ids := make([]string, 0, len(entries))
	for id := range entries {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		if entries[ids[i]] != entries[ids[j]] {
			return entries[ids[i]] > entries[ids[j]]
		}
		return ids[i] < ids[j]
	})
	if len(ids) > max {
		ids = ids[:max]
	}
	var b bytes.Buffer
	for _, id := range ids {
		fmt.Fprintf(&b, "%d %s\n", entries[id], id)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("vacation dupes: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), DupesFile+".tmp*")
	if err != nil {
		return fmt.Errorf("vacation dupes: %w", err)
	}
	_, err = tmp.Write(b.Bytes())
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("vacation dupes: %w", err)
	}
	return nil
}
