package store

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// dirtyWindow: a new/ whose mtime is this recent may still change within
// the same timestamp tick (ext4 stamps with jiffies), so a scan of it is not
// trusted to be complete and the next sync looks again.
const dirtyWindow = 2 * time.Second

// lockTimeout bounds the wait for another process's index lock when the
// caller's context has no deadline.
const lockTimeout = 30 * time.Second

// entry is one message of the shared folder state.
type entry struct {
	uid   uint32
	flags Flags
	inNew bool
	dead  bool // expunged; removed from msgs by compactMsgs
	size  int64
	vsize int64 // size in CRLF form (W= or a V record); -1 unknown
	date  int64 // internal date, unix seconds
	name  string
	// modseq of the last change; at or below the floor (0 included) it
	// reads as the floor (see modOf).
	modseq uint64
}

func (e *entry) base() string { b, _ := splitName(e.name); return b }

// folderState is the in-process truth about one folder, shared by every
// session and operation on it through the Store's registry.
type folderState struct {
	store *Store
	dir   string
	refs  int // guarded by store.mu
	gone  atomic.Bool

	sem   chan struct{} // in-process lock; a channel so waiting obeys ctx
	lockf *os.File      // flock(2) target shared with other processes

	loaded   bool
	validity uint32
	next     uint32
	msgs     []entry // ascending UID; dead entries until compactMsgs
	dead     int
	byBase   map[string]uint32 // built on the first scan only
	newMtime int64             // mtimes the index reflects; 0 = rescan
	curMtime int64
	keywords []string // dovecot-keywords: index = letter - 'a'
	kwStamp  int64

	idx     *os.File
	idxIno  uint64
	idxOff  int64
	records int
	pending []byte
	npend   int

	version uint64    // bumped on every change of msgs, for views
	changed EventKind // what changed since the last unlock, to publish

	// MODSEQ (RFC 7162), see index.go.
	modKnown  bool   // a Z record was read: A/R/X get their Q
	highest   uint64 // HIGHESTMODSEQ
	floor     uint64 // every change at or below it is summarised
	opMod     uint64 // the modseq of the operation under way; 0 none yet
	unstamped []uint32
	// modLog lists changes above the floor by ascending modseq; an entry
	// is current when its uid's modseq (live) or expunge modseq (gone)
	// is still ms. It is pruned by every compaction.
	modLog   []modChange
	expunged map[uint32]uint64 // expunge modseq of UIDs expunged above the floor

	// rebuilding is set while rebuild scans the files (see emit).
	rebuilding bool

	// recentFrom is the \Recent boundary: the lowest UID no session has
	// been given as \Recent yet; 0 until the index says.
	recentFrom uint32

	// snap is the message list handed to new views (copy on write),
	// valid while snapVersion == version.
	snap        []Message
	snapVersion uint64
}

// modChange is one entry of the modseq log.
type modChange struct {
	ms  uint64
	uid uint32
}

func newFolderState(s *Store, dir string) *folderState {
	return &folderState{store: s, dir: dir, sem: make(chan struct{}, 1)}
}

// size is how many messages the state holds in memory; it is written
// under st.sem, which an idle state (no references) has no holder of.
func (st *folderState) size() int { return len(st.msgs) }

func (st *folderState) close() {
	if st.idx != nil {
		st.idx.Close()
		st.idx = nil
	}
	if st.lockf != nil {
		st.lockf.Close()
		st.lockf = nil
	}
}

// enter takes the in-process lock.
func (st *folderState) enter(ctx context.Context) error {
	select {
	case st.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (st *folderState) leave() { <-st.sem }

// flock takes the cross-process lock (held until unflock); st.sem must be
// held. flock has no timeout, so it is polled without blocking.
func (st *folderState) flock(ctx context.Context) error {
	if st.lockf == nil {
		f, err := os.OpenFile(filepath.Join(st.dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("folder %s: %w", st.dir, ErrNotFound)
			}
			return ioError("open lock", st.dir, err)
		}
		st.lockf = f
	}
	deadline := time.Now().Add(lockTimeout)
	wait := time.Millisecond
	for {
		err := syscall.Flock(int(st.lockf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return ioError("flock", st.dir, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lock %s: %w: timed out", st.dir, ErrTemporary)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

func (st *folderState) unflock() {
	if st.lockf != nil {
		syscall.Flock(int(st.lockf.Fd()), syscall.LOCK_UN)
	}
}

// lock takes both locks and brings the state up to date with the disk;
// every mutating operation starts here.
func (st *folderState) lock(ctx context.Context) error {
	if err := st.enter(ctx); err != nil {
		return err
	}
	if err := st.flock(ctx); err != nil {
		st.leave()
		return err
	}
	if err := st.refresh(ctx); err != nil {
		st.unlock()
		return err
	}
	return nil
}

func (st *folderState) unlock() {
	st.unflock()
	st.leaveAndPublish()
}

// leaveAndPublish releases the in-process lock and tells the watchers what
// changed while it was held, whoever changed it.
func (st *folderState) leaveAndPublish() {
	k := st.changed
	st.changed = 0
	st.leave()
	st.store.hub.publish(st.dir, k)
}

func (st *folderState) path(sub string) string { return filepath.Join(st.dir, sub) }

func (st *folderState) msgPath(e *entry) string {
	if e.inNew {
		return filepath.Join(st.dir, "new", e.name)
	}
	return filepath.Join(st.dir, "cur", e.name)
}

func mtimeOf(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.ModTime().UnixNano(), nil
}

// upToDate is the cheap test a poll makes under st.sem only: nothing
// changed on disk since the state last looked (three stats).
func (st *folderState) upToDate() bool {
	if !st.loaded || st.idx == nil || st.newMtime == 0 || st.curMtime == 0 || st.gone.Load() {
		return false
	}
	fi, err := os.Stat(st.path(indexName))
	if err != nil || inode(fi) != st.idxIno || fi.Size() != st.idxOff {
		return false
	}
	n, err1 := mtimeOf(st.path("new"))
	c, err2 := mtimeOf(st.path("cur"))
	return err1 == nil && err2 == nil && n == st.newMtime && c == st.curMtime
}

func inode(fi os.FileInfo) uint64 {
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		return s.Ino
	}
	return 0
}

// refresh reads what other processes appended to the index, builds or
// repairs it when needed, and picks up files other programs added or
// removed. Both locks must be held.
func (st *folderState) refresh(ctx context.Context) error {
	if st.gone.Load() {
		return fmt.Errorf("folder %s: %w", st.dir, ErrNotFound)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !st.loaded {
		st.cleanTmp()
	}
	if err := st.readIndex(); err != nil {
		if !errors.Is(err, errBadRecord) {
			return err
		}
		st.store.logger().Warn("store: index damaged, rebuilding", "folder", st.dir, "err", err)
		// The old UIDVALIDITY may be unreadable; it was chosen no later than
		// the index was last written, so a value after that is new for sure.
		atLeast := st.validity + 1
		if fi, err := os.Stat(st.path(indexName)); err == nil {
			atLeast = max(atLeast, uint32(fi.ModTime().Unix())+1)
		}
		if err := st.rebuild(ctx, false, atLeast); err != nil {
			return err
		}
	}
	if !st.loaded {
		if err := st.rebuild(ctx, true, 0); err != nil {
			return err
		}
	}
	if err := st.syncDirs(ctx, false); err != nil {
		return err
	}
	st.loadKeywords()
	return st.flush()
}

// readIndex opens the index on first use, reloads it when another process
// replaced it (compaction, rebuild) and otherwise reads the new tail.
func (st *folderState) readIndex() error {
	p := st.path(indexName)
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		st.dropIndex()
		return nil
	}
	if err != nil {
		return ioError("stat", p, err)
	}
	if st.idx != nil && inode(fi) == st.idxIno && fi.Size() >= st.idxOff {
		if fi.Size() == st.idxOff {
			return nil
		}
		return st.readTail(fi.Size())
	}
	st.dropIndex()
	f, err := os.OpenFile(p, os.O_RDWR, 0o600)
	if err != nil {
		return ioError("open", p, err)
	}
	fi, err = f.Stat()
	if err != nil {
		f.Close()
		return ioError("stat", p, err)
	}
	st.idx, st.idxIno, st.idxOff = f, inode(fi), 0
	st.resetMsgs()
	return st.readTail(fi.Size())
}

func (st *folderState) dropIndex() {
	if st.idx != nil {
		st.idx.Close()
	}
	st.idx, st.idxIno, st.idxOff, st.records = nil, 0, 0, 0
	st.loaded = false
}

func (st *folderState) resetMsgs() {
	st.msgs, st.dead, st.byBase = nil, 0, nil
	st.loaded = false
	st.version++
}

// readTail applies the records between idxOff and size. A torn tail is cut
// off here, under the lock, before anybody appends after it.
func (st *folderState) readTail(size int64) error {
	data := make([]byte, size-st.idxOff)
	if _, err := st.idx.ReadAt(data, st.idxOff); err != nil && err != io.EOF {
		return ioError("read", st.path(indexName), err)
	}
	var bad error
	first := st.idxOff == 0
	n := 0
	good, torn, err := parseLog(data, func(r record) {
		n++
		if first != (r.op == 'H') && bad == nil {
			bad = fmt.Errorf("%w: header misplaced", errBadRecord)
		}
		first = false
		st.apply(r)
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return err
	}
	if st.idxOff == 0 && n == 0 {
		return fmt.Errorf("%w: empty index", errBadRecord)
	}
	st.idxOff += good
	st.records += n
	st.loaded = true
	if torn {
		if err := st.idx.Truncate(st.idxOff); err != nil {
			return ioError("truncate", st.path(indexName), err)
		}
	}
	// Changes another writer left without their modseq get one now (the
	// caller flushes); then the records this index lacks.
	st.stamp()
	st.establish()
	st.compactMsgs()
	return nil
}

// apply changes the in-memory state by one record.
func (st *folderState) apply(r record) {
	switch r.op {
	case 'M', 'V', 'Z', 'B':
		// Nothing a view shows.
	default:
		st.version++
	}
	switch r.op {
	case 'H':
		st.msgs, st.dead, st.byBase = st.msgs[:0], 0, nil
		st.validity, st.next = uint32(r.a), uint32(r.b)
		// The modseq state of the new snapshot follows in its Z; the
		// highest modseq seen stays, so a snapshot without one (an older
		// vmaild's) restarts above it.
		st.modKnown, st.floor, st.unstamped, st.modLog, st.expunged = false, 0, st.unstamped[:0], nil, nil
		st.recentFrom = 0
	case 'M':
		st.newMtime, st.curMtime = r.a, r.b
	case 'Z':
		st.modKnown = true
		st.highest = max(st.highest, uint64(r.a))
		st.floor = max(st.floor, uint64(r.b))
	case 'Q':
		st.applyModSeq(r.uid, uint64(r.a))
	case 'B':
		st.recentFrom = max(st.recentFrom, r.uid)
	case 'A':
		st.changed |= EventNew
		base, fl := splitName(r.name)
		e := entry{uid: r.uid, flags: fl, inNew: r.inNew, size: r.size, vsize: -1, date: r.date, name: r.name}
		if v, ok := vsizeFromName(base); ok {
			e.vsize = v
		}
		if st.next != 0 && r.uid >= st.next { // 0: exhausted, stays so
			st.next = r.uid + 1
		}
		i := st.find(r.uid)
		switch {
		case i < len(st.msgs) && st.msgs[i].uid == r.uid:
			if st.msgs[i].dead {
				st.dead--
			}
			if st.byBase != nil {
				delete(st.byBase, st.msgs[i].base())
			}
			st.msgs[i] = e
		case i == len(st.msgs):
			st.msgs = append(st.msgs, e)
		default:
			st.msgs = append(st.msgs, entry{})
			copy(st.msgs[i+1:], st.msgs[i:])
			st.msgs[i] = e
		}
		if st.byBase != nil {
			st.byBase[base] = e.uid
		}
		if st.modKnown {
			st.unstamped = append(st.unstamped, e.uid)
		}
	case 'R':
		st.changed |= EventFlags
		if e := st.get(r.uid); e != nil {
			if st.byBase != nil {
				delete(st.byBase, e.base())
			}
			old := e.flags
			e.name, e.inNew = r.name, r.inNew
			_, e.flags = splitName(r.name)
			if st.byBase != nil {
				st.byBase[e.base()] = e.uid
			}
			if st.modKnown && e.flags != old {
				st.unstamped = append(st.unstamped, e.uid)
			}
		}
	case 'V':
		// Not a change anybody watches: the message was always this size.
		if e := st.get(r.uid); e != nil {
			e.vsize = r.size
		}
	case 'X':
		st.changed |= EventExpunge
		if e := st.get(r.uid); e != nil {
			e.dead = true
			st.dead++
			if st.byBase != nil {
				delete(st.byBase, e.base())
			}
			if st.modKnown {
				st.unstamped = append(st.unstamped, e.uid)
			}
		}
	}
}

// applyModSeq records that uid's last change has modseq ms.
func (st *folderState) applyModSeq(uid uint32, ms uint64) {
	st.highest = max(st.highest, ms)
	for i := len(st.unstamped) - 1; i >= 0; i-- {
		if st.unstamped[i] == uid {
			st.unstamped = append(st.unstamped[:i], st.unstamped[i+1:]...)
			break
		}
	}
	if e := st.get(uid); e != nil {
		e.modseq = ms
	} else {
		if st.expunged == nil {
			st.expunged = make(map[uint32]uint64)
		}
		st.expunged[uid] = ms
	}
	c := modChange{ms: ms, uid: uid}
	n := len(st.modLog)
	if n == 0 || st.modLog[n-1].ms <= ms {
		st.modLog = append(st.modLog, c)
		return
	}
	// Out of order only in a hand-made index; keep the log sorted.
	i := sort.Search(n, func(i int) bool { return st.modLog[i].ms > ms })
	st.modLog = append(st.modLog, modChange{})
	copy(st.modLog[i+1:], st.modLog[i:])
	st.modLog[i] = c
}

// modOf is the modseq a message reports.
func (st *folderState) modOf(e *entry) uint64 { return max(e.modseq, st.floor) }

// stamp gives the changes applied since the last stamp the modseq of the
// operation under way (one new modseq per operation, RFC 7162 allows it).
func (st *folderState) stamp() {
	if len(st.unstamped) == 0 {
		return
	}
	if st.opMod == 0 {
		st.highest++
		st.opMod = st.highest
	}
	for len(st.unstamped) > 0 {
		uid := st.unstamped[len(st.unstamped)-1]
		st.emit(record{op: 'Q', uid: uid, a: int64(st.opMod)})
	}
}

// startModSeq begins the modseq state of an index that has none: above
// any modseq the folder had under this UIDVALIDITY (see index.go).
func (st *folderState) startModSeq() uint64 {
	base := max(uint64(time.Now().UnixMicro()), st.highest+1, 1)
	st.modKnown, st.highest, st.floor = true, base, base
	st.modLog, st.expunged, st.unstamped = nil, nil, st.unstamped[:0]
	return base
}

// initialRecent is the \Recent boundary of an index that has none: the
// messages still in new/ were never seen by a client.
func (st *folderState) initialRecent() uint32 {
	b := st.next
	for i := range st.msgs {
		if e := &st.msgs[i]; !e.dead && e.inNew {
			b = e.uid
			break
		}
	}
	return max(b, 1)
}

// establish writes the Z and B records an index lacks (one of an older
// vmaild, or a torn first write); both locks must be held.
func (st *folderState) establish() {
	if !st.modKnown {
		base := int64(st.startModSeq())
		st.emit(record{op: 'Z', a: base, b: base})
	}
	if st.recentFrom == 0 {
		st.emit(record{op: 'B', uid: st.initialRecent()})
	}
}

// find is the position of uid in msgs, or where it would go.
func (st *folderState) find(uid uint32) int {
	if n := len(st.msgs); n == 0 || st.msgs[n-1].uid < uid {
		return n // a new UID: every A of a scan
	}
	return sort.Search(len(st.msgs), func(i int) bool { return st.msgs[i].uid >= uid })
}

// get returns the live entry of uid, or nil.
func (st *folderState) get(uid uint32) *entry {
	i := st.find(uid)
	if i < len(st.msgs) && st.msgs[i].uid == uid && !st.msgs[i].dead {
		return &st.msgs[i]
	}
	return nil
}

func (st *folderState) compactMsgs() {
	if st.dead == 0 {
		return
	}
	out := st.msgs[:0]
	for _, e := range st.msgs {
		if !e.dead {
			out = append(out, e)
		}
	}
	clear(st.msgs[len(out):])
	st.msgs, st.dead = out, 0
}

// emit applies a record and queues it for the index; flush writes the
// queue. Together they are the only way the state changes. While a
// rebuild scans, nothing is queued: the snapshot that ends it writes the
// whole state.
func (st *folderState) emit(r record) {
	st.apply(r)
	if !st.rebuilding {
		st.pending = appendRecord(st.pending, r)
		st.npend++
	}
	if r.op != 'Q' {
		st.stamp()
	}
}

// flush appends the queued records with one write and one fsync, so an
// operation's UIDs are durable before it returns them, then compacts the
// log when it has grown well past the live messages.
func (st *folderState) flush() error {
	st.compactMsgs()
	st.opMod = 0
	if st.npend == 0 {
		return nil
	}
	if st.idx == nil || st.records > 2*len(st.msgs)+1024 {
		st.pending, st.npend = st.pending[:0], 0
		return st.writeSnapshot()
	}
	p := st.path(indexName)
	if _, err := st.idx.WriteAt(st.pending, st.idxOff); err != nil {
		st.forceReload()
		return ioError("write", p, err)
	}
	if err := st.idx.Sync(); err != nil {
		st.forceReload()
		return ioError("fsync", p, err)
	}
	st.idxOff += int64(len(st.pending))
	st.records += st.npend
	st.pending, st.npend = st.pending[:0], 0
	return nil
}

// forceReload makes the next refresh rebuild memory from the disk after a
// failed write, so memory never claims what the index does not hold.
func (st *folderState) forceReload() {
	st.pending, st.npend = st.pending[:0], 0
	st.opMod = 0
	st.dropIndex()
	st.resetMsgs()
}

// writeSnapshot replaces the index with a compact one: H, one A per
// message, M. Written to a temporary name, fsynced and renamed, so a crash
// leaves either the old or the new index.
func (st *folderState) writeSnapshot() error {
	st.compactMsgs()
	buf := make([]byte, 0, 64+len(st.msgs)*96)
	buf = appendRecord(buf, record{op: 'H', a: int64(st.validity), b: int64(st.next)})
	for i := range st.msgs {
		e := &st.msgs[i]
		buf = appendRecord(buf, record{op: 'A', uid: e.uid, inNew: e.inNew, size: e.size, date: e.date, name: e.name})
	}
	buf = appendRecord(buf, record{op: 'M', a: st.newMtime, b: st.curMtime})
	nrec := len(st.msgs) + 2
	for i := range st.msgs {
		// Last, where an older reader takes them for a torn tail.
		e := &st.msgs[i]
		if e.vsize < 0 {
			continue
		}
		if _, inName := vsizeFromName(e.base()); !inName {
			buf = appendRecord(buf, record{op: 'V', uid: e.uid, size: e.vsize})
			nrec++
		}
	}
	if !st.modKnown {
		st.startModSeq()
	}
	st.pruneModLog()
	buf = appendRecord(buf, record{op: 'Z', a: int64(st.highest), b: int64(st.floor)})
	for _, c := range st.modLog {
		buf = appendRecord(buf, record{op: 'Q', uid: c.uid, a: int64(c.ms)})
	}
	if st.recentFrom == 0 {
		st.recentFrom = st.initialRecent()
	}
	buf = appendRecord(buf, record{op: 'B', uid: st.recentFrom})
	nrec += len(st.modLog) + 2
	p := st.path(indexName)
	tmp := p + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		st.forceReload()
		return ioError("create", tmp, err)
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err == nil {
		err = syncDir(st.dir)
	}
	var fi os.FileInfo
	if err == nil {
		fi, err = f.Stat()
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		st.forceReload()
		return ioError("write index", p, err)
	}
	if st.idx != nil {
		st.idx.Close()
	}
	st.idx, st.idxIno, st.idxOff, st.records = f, inode(fi), int64(len(buf)), nrec
	st.loaded = true
	return nil
}

// maxModLog bounds the changes a compaction keeps exact modseqs for
// (live messages and expunges); older ones are raised to the floor.
const maxModLog = 10000

// pruneModLog leaves in modLog only the current entry of each change,
// at most maxModLog of them, raising the floor over the others.
func (st *folderState) pruneModLog() {
	cur := st.modLog[:0]
	for _, c := range st.modLog {
		if c.ms <= st.floor {
			continue
		}
		if e := st.get(c.uid); e != nil && e.modseq == c.ms {
			cur = append(cur, c)
		} else if e == nil && st.expunged[c.uid] == c.ms {
			cur = append(cur, c)
		}
	}
	clear(st.modLog[len(cur):])
	st.modLog = cur
	limit := maxModLog
	if st.store != nil && st.store.modLogLimit > 0 {
		limit = st.store.modLogLimit
	}
	if n := len(cur); n > limit {
		// Entries sharing the floor's modseq go with it.
		floor := cur[n-limit-1].ms
		i := sort.Search(n, func(i int) bool { return cur[i].ms > floor })
		st.modLog = append([]modChange(nil), cur[i:]...)
		st.floor = floor
	}
	for uid, ms := range st.expunged {
		if ms <= st.floor {
			delete(st.expunged, uid)
		}
	}
}

// rebuild makes a new index from the files. On the first build of a folder
// (fresh=true) Dovecot's dovecot-uidlist, when there is one, provides
// UIDVALIDITY and the UIDs; a damaged index of ours gets a new UIDVALIDITY
// instead, because UIDs it had handed out may be lost and must not be
// reused under the old one.
func (st *folderState) rebuild(ctx context.Context, fresh bool, atLeast uint32) error {
	st.dropIndex()
	st.resetMsgs()
	var known map[string]uint32
	st.validity, st.next = 0, 1
	if fresh {
		if v, n, m, ok := readUIDList(st.path(uidlistName)); ok {
			st.validity, st.next, known = v, n, m
		}
	}
	if st.validity == 0 {
		st.validity = st.store.newUIDValidity(atLeast)
	}
	st.byBase = make(map[string]uint32)
	st.newMtime, st.curMtime = 0, 0
	st.recentFrom = 0
	st.pending, st.npend = st.pending[:0], 0
	// The modseq state starts after the scan, so that its records get
	// none: every message found is as new as any other to a client, and
	// has the floor modseq.
	st.modKnown, st.unstamped = false, st.unstamped[:0]
	st.rebuilding = true
	err := st.scan(ctx, true, true, known)
	st.rebuilding = false
	if err != nil {
		return err
	}
	st.startModSeq()
	st.pending, st.npend, st.opMod = st.pending[:0], 0, 0
	return st.writeSnapshot()
}

// syncDirs looks at new/ and cur/ and scans the ones whose mtime differs
// from what the index reflects (or all, when forced).
func (st *folderState) syncDirs(ctx context.Context, force bool) error {
	n, err := mtimeOf(st.path("new"))
	if err != nil {
		return st.dirErr(err)
	}
	c, err := mtimeOf(st.path("cur"))
	if err != nil {
		return st.dirErr(err)
	}
	doNew := force || n != st.newMtime || st.newMtime == 0
	doCur := force || c != st.curMtime || st.curMtime == 0
	if !doNew && !doCur {
		return nil
	}
	if st.byBase == nil {
		st.byBase = make(map[string]uint32, len(st.msgs))
		for i := range st.msgs {
			if !st.msgs[i].dead {
				st.byBase[st.msgs[i].base()] = st.msgs[i].uid
			}
		}
	}
	return st.scan(ctx, doNew, doCur, nil)
}

func (st *folderState) dirErr(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		st.gone.Store(true)
		return fmt.Errorf("folder %s: %w", st.dir, ErrNotFound)
	}
	return ioError("stat", st.dir, err)
}

type found struct {
	name  string
	base  string
	inNew bool
}

// scan reconciles the state with the listed directories: renamed files get
// R records, vanished ones X, unknown ones A with new UIDs (or the UIDs of
// known, from a dovecot-uidlist). It never touches a message file and
// stats only files whose size or date is not in their name.
func (st *folderState) scan(ctx context.Context, doNew, doCur bool, known map[string]uint32) error {
	seen := make([]bool, len(st.msgs))
	var fresh []found
	var freshBase map[string]bool // made by the first scanDir
	missingNew := false
	var scanDir func(sub string, inNew bool) error
	scanDir = func(sub string, inNew bool) error {
		dir := st.path(sub)
		mt, err := mtimeOf(dir)
		if err != nil {
			return st.dirErr(err)
		}
		d, err := os.Open(dir)
		if err != nil {
			return st.dirErr(err)
		}
		defer d.Close()
		// The whole listing first, so that freshBase is made at its
		// size: a first scan puts every file of the folder in it.
		ents, err := d.ReadDir(-1)
		if err != nil {
			return ioError("readdir", dir, err)
		}
		if freshBase == nil {
			hint := max(len(ents)-len(st.byBase), 0)
			freshBase = make(map[string]bool, hint)
			fresh = make([]found, 0, hint)
		}
		for k, de := range ents {
			if k&4095 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			t := de.Type()
			if t&(os.ModeDir|os.ModeSymlink|os.ModeNamedPipe|os.ModeSocket|os.ModeDevice|os.ModeIrregular) != 0 {
				continue
			}
			name := de.Name()
			if !validFileName(name) {
				continue
			}
			base, _ := splitName(name)
			if uid, ok := st.byBase[base]; ok {
				i := st.find(uid)
				if seen[i] {
					continue // the same message twice (cur/ wins, scanned first)
				}
				seen[i] = true
				e := &st.msgs[i]
				if e.name != name || e.inNew != inNew {
					st.emit(record{op: 'R', uid: uid, inNew: inNew, name: name})
				}
				continue
			}
			// One map operation: the map grows when base is new.
			n := len(freshBase)
			if freshBase[base] = true; len(freshBase) == n {
				continue
			}
			fresh = append(fresh, found{name: name, base: base, inNew: inNew})
		}
		// new/ receives lock-free deliveries (ours, Postfix's) that may
		// land within the same mtime tick as this listing; cur/ is written
		// only under the index lock, so its mtime is trusted as is (a
		// foreign IMAP server writing cur/ concurrently is unsupported).
		if inNew && time.Since(time.Unix(0, mt)) < dirtyWindow {
			mt = 0
		}
		if inNew {
			st.newMtime = mt
		} else {
			st.curMtime = mt
		}
		return nil
	}
	if doCur {
		if err := scanDir("cur", false); err != nil {
			return err
		}
	}
	if doNew {
		if err := scanDir("new", true); err != nil {
			return err
		}
	}
	for i := range st.msgs {
		e := &st.msgs[i]
		if !seen[i] && !e.dead && e.inNew && doNew && !doCur {
			missingNew = true
		}
	}
	if missingNew {
		// Something left new/ while cur/ looked unchanged: most likely
		// another program moved it to cur/ after we looked there. Look
		// again rather than expunge a message that is still there.
		if err := scanDir("cur", false); err != nil {
			return err
		}
		doCur = true
	}
	for i := range st.msgs {
		e := &st.msgs[i]
		if !seen[i] && !e.dead && ((e.inNew && doNew) || (!e.inNew && doCur)) {
			st.emit(record{op: 'X', uid: e.uid})
		}
	}
	if len(fresh) > 0 {
		type add struct {
			found
			size, date int64
			known      uint32 // the dovecot-uidlist's UID; 0 none
		}
		adds := make([]add, 0, len(fresh))
		for _, f := range fresh {
			a := add{found: f, known: known[f.base]}
			size, okS := sizeFromName(f.base)
			date, okD := timeFromName(f.base)
			if !okS || !okD {
				sub := "cur"
				if f.inNew {
					sub = "new"
				}
				fi, err := os.Lstat(filepath.Join(st.dir, sub, f.name))
				if err != nil {
					continue // gone again since the listing
				}
				if !fi.Mode().IsRegular() {
					continue
				}
				if !okS {
					size = fi.Size()
				}
				if !okD {
					date = fi.ModTime()
				}
			}
			a.size, a.date = size, date.Unix()
			adds = append(adds, a)
		}
		// Known UIDs first in UID order, then the others by date, so new
		// UIDs follow arrival order as closely as the names tell it. The
		// names are distinct (one per base), so the order is total and
		// an unstable sort gives the one answer.
		slices.SortFunc(adds, func(x, y add) int {
			if (x.known != 0) != (y.known != 0) {
				if x.known != 0 {
					return -1
				}
				return 1
			}
			if c := cmp.Compare(x.known, y.known); c != 0 {
				return c
			}
			if c := cmp.Compare(x.date, y.date); c != 0 {
				return c
			}
			return strings.Compare(x.name, y.name)
		})
		used := map[uint32]bool{}
		if len(st.byBase) == 0 {
			// A first scan: size the map once rather than grow it.
			st.byBase = make(map[string]uint32, len(adds))
		}
		st.msgs = slices.Grow(st.msgs, len(adds))
		for _, a := range adds {
			uid := a.known
			if uid == 0 || used[uid] || st.get(uid) != nil {
				uid = st.next
			}
			if uid == 0 || st.next == 0 { // UID space exhausted
				return fmt.Errorf("folder %s: %w: UIDs exhausted", st.dir, ErrTemporary)
			}
			used[uid] = true
			st.emit(record{op: 'A', uid: uid, inNew: a.inNew, size: a.size, date: a.date, name: a.name})
		}
	}
	st.compactMsgs()
	st.emit(record{op: 'M', a: st.newMtime, b: st.curMtime})
	return nil
}

// cleanTmp removes tmp/ leftovers of crashed writers: files older than
// TmpMaxAge, which no live writer can still own. Age is the later of mtime
// and ctime: an APPEND with an old internal date (chtimes) or a COPY (a hard
// link to an old message) leaves a file whose mtime is in the past while its
// writer is still at work, but whose ctime is now.
func (st *folderState) cleanTmp() {
	dir := st.path("tmp")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	limit := time.Now().Add(-st.store.tmpMaxAge())
	for _, de := range ents {
		fi, err := de.Info()
		if err != nil || fi.IsDir() || !changedAt(fi).Before(limit) {
			continue
		}
		if os.Remove(filepath.Join(dir, de.Name())) == nil {
			st.store.logger().Info("store: removed tmp leftover", "folder", st.dir, "file", de.Name())
		}
	}
}

// curBefore is called right before an operation of ours changes cur/: it
// returns cur/'s mtime when the index reflects it (nobody else changed it
// since the last scan), else 0.
func (st *folderState) curBefore() int64 {
	m, err := mtimeOf(st.path("cur"))
	if err != nil || m != st.curMtime {
		return 0
	}
	return m
}

// ownCurChange records cur/'s new mtime after an operation of ours changed
// it, so the next sync does not rescan a 100,000-message directory because
// of our own rename. It does so only when curBefore saw the index up to
// date; otherwise the next sync rescans, as it must.
func (st *folderState) ownCurChange(pre int64) {
	if pre == 0 {
		return
	}
	post, err := mtimeOf(st.path("cur"))
	if err == nil && post != pre {
		st.emit(record{op: 'M', a: st.newMtime, b: post})
	}
}

// readUIDList reads Dovecot's UID map (version 1 or 3): header
// "3 V<uidvalidity> N<uidnext> …" then "<uid> [ext …] :<file base>" (v3) or
// "<uid> <file base>" (v1). ok is false when the file is absent or bad; a
// bad file is ignored entirely rather than half believed.
func readUIDList(path string) (validity, next uint32, m map[string]uint32, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, nil, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	if !sc.Scan() {
		return 0, 0, nil, false
	}
	hdr := strings.Fields(sc.Text())
	if len(hdr) < 1 {
		return 0, 0, nil, false
	}
	version := hdr[0]
	if version != "1" && version != "3" {
		return 0, 0, nil, false
	}
	if version == "1" && len(hdr) >= 3 {
		v, e1 := strconv.ParseUint(hdr[1], 10, 32)
		n, e2 := strconv.ParseUint(hdr[2], 10, 32)
		if e1 != nil || e2 != nil {
			return 0, 0, nil, false
		}
		validity, next = uint32(v), uint32(n)
	}
	for _, h := range hdr[1:] {
		if len(h) < 2 || version != "3" {
			continue
		}
		v, err := strconv.ParseUint(h[1:], 10, 32)
		switch h[0] {
		case 'V':
			if err != nil {
				return 0, 0, nil, false
			}
			validity = uint32(v)
		case 'N':
			if err != nil {
				return 0, 0, nil, false
			}
			next = uint32(v)
		}
	}
	if validity == 0 {
		return 0, 0, nil, false
	}
	m = make(map[string]uint32)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		sp := strings.IndexByte(line, ' ')
		if sp <= 0 {
			return 0, 0, nil, false
		}
		uid, err := strconv.ParseUint(line[:sp], 10, 32)
		if err != nil || uid == 0 || uid == math.MaxUint32 {
			// The last UID leaves no UIDNEXT: the folder needs a new
			// UIDVALIDITY, which ignoring the file gives it.
			return 0, 0, nil, false
		}
		rest := line[sp+1:]
		var name string
		if version == "3" {
			c := strings.Index(rest, ":")
			if c < 0 {
				return 0, 0, nil, false
			}
			name = rest[c+1:]
		} else {
			name = strings.TrimSpace(rest)
		}
		base, _ := splitName(name)
		if !validFileName(base) {
			continue
		}
		m[base] = uint32(uid)
		if uint32(uid) >= next {
			next = uint32(uid) + 1
		}
	}
	if sc.Err() != nil {
		return 0, 0, nil, false
	}
	if next == 0 {
		next = 1
	}
	return validity, next, m, true
}

// changedAt is when a file last changed in any way: its mtime, or its
// inode change time when that is later (link, chtimes, rename).
func changedAt(fi fs.FileInfo) time.Time {
	t := fi.ModTime()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if c := time.Unix(st.Ctim.Sec, st.Ctim.Nsec); c.After(t) {
			t = c
		}
	}
	return t
}
