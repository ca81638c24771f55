package store

import (
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
	"time"
)

// ErrUIDValidity: the folder's index was rebuilt under a new UIDVALIDITY
// while the folder was selected; the IMAP layer must end the session (BYE),
// since the client's UIDs no longer mean anything.
var ErrUIDValidity = errors.New("folder UIDVALIDITY changed")

// Message is one message of a folder snapshot.
type Message struct {
	UID   uint32
	Flags Flags
	// Size is the raw size in octets as the index knows it (from S= in
	// the file name); MessageReader.Size is the file's actual size.
	Size         int64
	InternalDate time.Time
	// ModSeq is the message's MODSEQ (RFC 7162) as the view knows it.
	ModSeq uint64
}

// Expunged is one message an operation or a Poll removed from the view.
// Lists of them are ordered for sending as IMAP EXPUNGE responses: by
// descending sequence number, so each Seq is valid when it is sent.
type Expunged struct {
	Seq uint32
	UID uint32
}

// FlagUpdate is a message's flags after a change, with its sequence number
// in the view at the time the update is returned.
type FlagUpdate struct {
	Seq    uint32
	UID    uint32
	Flags  Flags
	ModSeq uint64
}

// Update is what changed in a folder since the view last looked.
type Update struct {
	// Expunged first (descending Seq), then NumMessages for EXISTS, then
	// Flags with sequence numbers after the expunges.
	Expunged    []Expunged
	NumMessages uint32
	New         []Message
	Flags       []FlagUpdate
	UIDNext     uint32
}

// Empty reports whether nothing changed.
func (u *Update) Empty() bool {
	return len(u.Expunged) == 0 && len(u.New) == 0 && len(u.Flags) == 0
}

// FlagOp is how SetFlags combines the given flags with the present ones.
type FlagOp int

const (
	FlagsAdd FlagOp = iota
	FlagsRemove
	FlagsReplace
)

// AppendOptions are APPEND's optional arguments.
type AppendOptions struct {
	// Flags are IMAP flag names; new keywords are created.
	Flags []string
	// InternalDate; zero means now.
	InternalDate time.Time
	// Size, when positive, is the announced size (an IMAP literal): the
	// quota is charged before anything is written, and a message of
	// another size is refused. Zero means unknown: charged after writing.
	Size int64
}

// AppendResult is what APPENDUID needs.
type AppendResult struct {
	UIDValidity uint32
	UID         uint32
	Size        int64
}

// CopyResult is what COPYUID needs: Source[i] was copied to Dest[i].
// Messages that were expunged meanwhile are left out.
type CopyResult struct {
	UIDValidity uint32
	Source      []uint32
	Dest        []uint32
}

// Folder is a selected folder: a snapshot of its messages that changes only
// by this session's own operations and by Poll, so sequence numbers stay
// what the IMAP client was told. A Folder is used by one session (one
// goroutine at a time); the state behind it is shared and locked.
type Folder struct {
	mb       *Mailbox
	name     string
	st       *folderState
	readOnly bool

	msgs     []Message
	shared   bool // msgs is the state's snapshot: copy before writing
	maxUID   uint32
	version  uint64
	validity uint32
	next     uint32
	highest  uint64
	keywords []string
	closed   bool

	// recent lists the UID ranges this session was given as \Recent;
	// recentSeen is the first UID it has not considered yet.
	recent     []uidRange
	recentSeen uint32
}

// uidRange is the UIDs lo ≤ uid < hi.
type uidRange struct{ lo, hi uint64 }

// Select opens a folder as a snapshot view (IMAP SELECT/EXAMINE, POP3
// INBOX). readOnly refuses changes.
//
// A read-write Select claims the messages no session has seen yet: they
// are \Recent in this session (NumRecent, IsRecent) and in no other, of
// this process or another. A read-only one (EXAMINE) shows them as
// \Recent without claiming them.
//
// The view starts as the folder state's shared message list, so a
// Select of a folder that is in memory (another session has it open, or
// had it recently) and that did not change since does no per-message
// work.
func (m *Mailbox) Select(ctx context.Context, name string, readOnly bool) (*Folder, error) {
	dir, canonical, err := m.resolve(name, true)
	if err != nil {
		return nil, err
	}
	st := m.store.acquire(dir)
	if err := st.lock(ctx); err != nil {
		m.store.release(st)
		return nil, err
	}
	f := &Folder{mb: m, name: canonical, st: st, readOnly: readOnly}
	f.msgs, f.shared = st.snapshot(), true
	if n := len(f.msgs); n > 0 {
		f.maxUID = f.msgs[n-1].UID
	}
	f.version, f.validity, f.next, f.highest = st.version, st.validity, st.next, st.highest
	f.keywords = append([]string(nil), st.keywords...)
	err = f.claimRecent()
	st.unlock()
	if err != nil {
		m.store.release(st)
		return nil, err
	}
	return f, nil
}

// snapshot is the message list of the state for a new view; both locks
// or st.sem held. Views share it and copy it before they change it.
func (st *folderState) snapshot() []Message {
	st.compactMsgs()
	if st.snap == nil || st.snapVersion != st.version || len(st.snap) != len(st.msgs) {
		snap := make([]Message, len(st.msgs))
		for i := range st.msgs {
			e := &st.msgs[i]
			snap[i] = Message{UID: e.uid, Flags: e.flags, Size: e.size, InternalDate: time.Unix(e.date, 0), ModSeq: st.modOf(e)}
		}
		st.snap, st.snapVersion = snap, st.version
	}
	return st.snap
}

// own makes the view's message list its own before it is changed.
func (f *Folder) own() {
	if f.shared {
		f.msgs = append([]Message(nil), f.msgs...)
		f.shared = false
	}
}

// claimRecent gives this view the \Recent messages among those it has
// and no view had yet, and for a read-write view records the claim in
// the index so that no other session gets them. Both locks must be held,
// or only st.sem for a read-only view.
func (f *Folder) claimRecent() error {
	st := f.st
	if f.maxUID == 0 || f.maxUID == math.MaxUint32 {
		return nil
	}
	hi := f.maxUID + 1
	lo := max(st.recentFrom, f.recentSeen, 1)
	f.recentSeen = hi
	if hi <= lo {
		return nil
	}
	if n := len(f.recent); n > 0 && f.recent[n-1].hi == uint64(lo) {
		f.recent[n-1].hi = uint64(hi)
	} else {
		f.recent = append(f.recent, uidRange{uint64(lo), uint64(hi)})
	}
	if f.readOnly {
		// EXAMINE sees what nobody claimed, and does not claim it.
		return nil
	}
	st.emit(record{op: 'B', uid: hi})
	return st.flush()
}

// needsClaim: the view has UIDs no session has considered.
func (f *Folder) needsClaim() bool {
	return f.maxUID != 0 && f.maxUID != math.MaxUint32 && f.maxUID+1 > max(f.st.recentFrom, f.recentSeen)
}

// NumRecent is the number of messages of the view that are \Recent in
// this session (RECENT).
func (f *Folder) NumRecent() int {
	n := 0
	for _, r := range f.recent {
		n += f.lowerBound(r.hi) - f.lowerBound(r.lo)
	}
	return n
}

// IsRecent reports whether uid is \Recent in this session.
func (f *Folder) IsRecent(uid uint32) bool {
	for _, r := range f.recent {
		if uint64(uid) >= r.lo && uint64(uid) < r.hi {
			return true
		}
	}
	return false
}

// lowerBound is the position of the first message with UID ≥ uid.
func (f *Folder) lowerBound(uid uint64) int {
	return sort.Search(len(f.msgs), func(i int) bool { return uint64(f.msgs[i].UID) >= uid })
}

// HighestModSeq is the folder's HIGHESTMODSEQ as of the view: it covers
// exactly the changes the view reflects, so it moves with Select and
// Poll, not with this session's own STORE or EXPUNGE (poll after them).
func (f *Folder) HighestModSeq() uint64 { return f.highest }

// ChangedSince returns the UIDs of the view's messages whose modseq is
// above modseq, ascending (FETCH/SEARCH CHANGEDSINCE). It reads the
// folder's log of changes, so its cost grows with the changes since
// modseq, not with the folder; only a modseq older than the oldest
// change the index still knows makes it look at every message.
func (f *Folder) ChangedSince(ctx context.Context, modseq uint64) ([]uint32, error) {
	st := f.st
	if err := st.enter(ctx); err != nil {
		return nil, err
	}
	defer st.leave()
	var out []uint32
	if modseq < st.floor {
		for _, m := range f.msgs {
			if m.ModSeq > modseq {
				out = append(out, m.UID)
			}
		}
		return out, nil
	}
	log := st.modLog
	i := sort.Search(len(log), func(i int) bool { return log[i].ms > modseq })
	for _, c := range log[i:] {
		if seq := f.SeqNum(c.uid); seq != 0 && f.msgs[seq-1].ModSeq > modseq {
			out = append(out, c.uid)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// ExpungedSince returns the UIDs expunged with a modseq above modseq,
// ascending, that are no longer in the view (VANISHED (EARLIER) for
// CHANGEDSINCE and SELECT (QRESYNC)). complete is false when modseq is
// older than the expunge history the index keeps (see index.go): the
// list is then partial and the caller must fall back to comparing the
// client's UIDs with the view.
func (f *Folder) ExpungedSince(ctx context.Context, modseq uint64) (uids []uint32, complete bool, err error) {
	st := f.st
	if err := st.enter(ctx); err != nil {
		return nil, false, err
	}
	defer st.leave()
	log := st.modLog
	i := sort.Search(len(log), func(i int) bool { return log[i].ms > modseq })
	for _, c := range log[i:] {
		if ms, ok := st.expunged[c.uid]; ok && ms == c.ms && st.get(c.uid) == nil && f.SeqNum(c.uid) == 0 {
			uids = append(uids, c.uid)
		}
	}
	slices.Sort(uids)
	return slices.Compact(uids), modseq >= st.floor, nil
}

// Close releases the folder; the Folder must not be used afterwards.
func (f *Folder) Close() error {
	if !f.closed {
		f.closed = true
		f.mb.store.release(f.st)
	}
	return nil
}

// Dir is the folder's directory. With UIDValidity and a UID it names one
// message for as long as the message exists (messages never change), so
// caches of what a message says are keyed by the three.
func (f *Folder) Dir() string { return f.st.dir }

func (f *Folder) Name() string        { return f.name }
func (f *Folder) ReadOnly() bool      { return f.readOnly }
func (f *Folder) UIDValidity() uint32 { return f.validity }

// UIDNext is the next UID as of the last Poll.
func (f *Folder) UIDNext() uint32 { return f.next }

// Messages is the snapshot, ascending by UID; position i is sequence
// number i+1. The caller must not modify it, and it is valid only until
// the next Poll or operation on this Folder (which update it in place).
func (f *Folder) Messages() []Message { return f.msgs }

// Len is the number of messages in the view (EXISTS).
func (f *Folder) Len() int { return len(f.msgs) }

// SeqNum returns the sequence number of uid, or 0 when it is not in the
// view.
func (f *Folder) SeqNum(uid uint32) uint32 {
	i := sort.Search(len(f.msgs), func(i int) bool { return f.msgs[i].UID >= uid })
	if i < len(f.msgs) && f.msgs[i].UID == uid {
		return uint32(i + 1)
	}
	return 0
}

// UID returns the UID of sequence number seq (1-based), or 0.
func (f *Folder) UID(seq uint32) uint32 {
	if seq == 0 || int(seq) > len(f.msgs) {
		return 0
	}
	return f.msgs[seq-1].UID
}

// FlagNames renders flags as IMAP flag names (\Seen, $Forwarded for
// maildir P, keywords by this folder's dovecot-keywords).
func (f *Folder) FlagNames(fl Flags) []string { return flagNames(nil, fl, f.keywords) }

// AppendFlagNames is FlagNames appending to dst, so that a FETCH FLAGS of
// every message can reuse one slice instead of allocating per message.
func (f *Folder) AppendFlagNames(dst []string, fl Flags) []string {
	return flagNames(dst, fl, f.keywords)
}

// Keywords lists the folder's defined keywords (for FLAGS and
// PERMANENTFLAGS; the store accepts new ones until 26 exist).
func (f *Folder) Keywords() []string {
	var out []string
	for _, k := range f.keywords {
		if k != "" {
			out = append(out, k)
		}
	}
	return out
}

// UniqueID is the message's maildir base name, stable for the message's
// life in this folder: POP3 UIDL material (Dovecot's %f). The UIDVALIDITY
// and UID pair (Dovecot's default "%08Xu%08Xv") is the other choice.
func (f *Folder) UniqueID(ctx context.Context, uid uint32) (string, error) {
	if err := f.st.enter(ctx); err != nil {
		return "", err
	}
	defer f.st.leave()
	e := f.st.get(uid)
	if e == nil {
		return "", fmt.Errorf("uid %d: %w", uid, ErrNotFound)
	}
	return e.base(), nil
}

// VirtualSizes returns the virtual size (see VirtualSize: the size in
// CRLF form, what POP3 RETR sends) of every message of the view, in view
// order. It comes from the file name's W= (written by vmaild and Dovecot)
// or the index; a message that has neither (dropped in by other software,
// or written by an older vmaild) is read once and its size recorded in the
// index, so that the next call reads no message. A message expunged
// meanwhile gets its raw size.
func (f *Folder) VirtualSizes(ctx context.Context) ([]int64, error) {
	st := f.st
	out := make([]int64, len(f.msgs))
	var missing []int
	if err := st.enter(ctx); err != nil {
		return nil, err
	}
	for i, m := range f.msgs {
		if e := st.get(m.UID); e != nil && e.vsize >= 0 {
			out[i] = e.vsize
		} else {
			out[i] = m.Size
			if e != nil {
				missing = append(missing, i)
			}
		}
	}
	st.leave()
	if len(missing) == 0 {
		return out, nil
	}
	// Read without the folder's lock: deliveries and other sessions go on.
	counted := missing[:0]
	for _, i := range missing {
		r, err := f.Open(ctx, f.msgs[i].UID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		n, err := VirtualSize(r)
		r.Close()
		if err != nil {
			return nil, ioError("read", fmt.Sprintf("%s uid %d", st.dir, f.msgs[i].UID), err)
		}
		out[i] = n
		counted = append(counted, i)
	}
	if err := st.lock(ctx); err != nil {
		// The index is a cache: the sizes are right, the next call
		// counts again.
		f.mb.store.logger().Warn("store: virtual sizes not recorded", "folder", st.dir, "err", err)
		return out, nil
	}
	for _, i := range counted {
		if e := st.get(f.msgs[i].UID); e != nil && e.vsize < 0 {
			st.emit(record{op: 'V', uid: e.uid, size: out[i]})
		}
	}
	err := st.flush()
	st.unlock()
	if err != nil {
		f.mb.store.logger().Warn("store: virtual sizes not recorded", "folder", st.dir, "err", err)
	}
	return out, nil
}

// UniqueIDs is UniqueID for every message of the view, in view order,
// under one lock: a POP3 login asks for all of them.
func (f *Folder) UniqueIDs(ctx context.Context) ([]string, error) {
	if err := f.st.enter(ctx); err != nil {
		return nil, err
	}
	defer f.st.leave()
	out := make([]string, len(f.msgs))
	for i, m := range f.msgs {
		e := f.st.get(m.UID)
		if e == nil {
			return nil, fmt.Errorf("uid %d: %w", m.UID, ErrNotFound)
		}
		out[i] = e.base()
	}
	return out, nil
}

// MessageReader reads one message file.
type MessageReader struct {
	f    *os.File
	size int64
}

func (r *MessageReader) Read(p []byte) (int, error)                { return r.f.Read(p) }
func (r *MessageReader) ReadAt(p []byte, off int64) (int, error)   { return r.f.ReadAt(p, off) }
func (r *MessageReader) Seek(off int64, whence int) (int64, error) { return r.f.Seek(off, whence) }
func (r *MessageReader) Close() error                              { return r.f.Close() }

// Size is the file's size in octets, from fstat of the open file, so it
// always matches what Read returns even when a name's S= lies.
func (r *MessageReader) Size() int64 { return r.size }

// Open opens a message for reading. A file renamed by another program
// since the index last looked is found by rescanning once.
func (f *Folder) Open(ctx context.Context, uid uint32) (*MessageReader, error) {
	st := f.st
	for attempt := 0; ; attempt++ {
		if err := st.enter(ctx); err != nil {
			return nil, err
		}
		if attempt > 0 {
			err := st.flock(ctx)
			if err == nil {
				err = st.refresh(ctx)
				if err == nil {
					err = st.syncDirs(ctx, true)
				}
				if err == nil {
					err = st.flush()
				}
				st.unflock()
			}
			if err != nil {
				st.leaveAndPublish()
				return nil, err
			}
		}
		e := st.get(uid)
		var p string
		if e != nil {
			p = st.msgPath(e)
		}
		st.leaveAndPublish()
		if e == nil {
			return nil, fmt.Errorf("uid %d: %w", uid, ErrNotFound)
		}
		file, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) && attempt == 0 {
			continue
		}
		if err != nil {
			return nil, ioError("open", p, err)
		}
		fi, err := file.Stat()
		if err != nil {
			file.Close()
			return nil, ioError("stat", p, err)
		}
		return &MessageReader{f: file, size: fi.Size()}, nil
	}
}

// Poll brings the view up to date and says what changed: messages other
// sessions, deliveries and other programs added, expunged or reflagged.
// When nothing changed on disk it costs three stat calls.
//
// New messages that no session has seen are \Recent in this one (a
// read-write view claims them, as Select does).
func (f *Folder) Poll(ctx context.Context) (Update, error) {
	st := f.st
	if err := st.enter(ctx); err != nil {
		return Update{}, err
	}
	locked := false
	if !st.upToDate() {
		err := st.flock(ctx)
		if err == nil {
			locked = true
			err = st.refresh(ctx)
		}
		if err != nil {
			if locked {
				st.unflock()
			}
			st.leaveAndPublish()
			return Update{}, err
		}
	}
	u, err := f.diff()
	if err == nil && f.needsClaim() {
		if !locked && !f.readOnly {
			// The claim is written to the index: at its end, as of now.
			err = st.flock(ctx)
			if err == nil {
				locked = true
				err = st.refresh(ctx)
			}
		}
		if err == nil {
			err = f.claimRecent()
		}
	}
	if locked {
		st.unflock()
	}
	st.leaveAndPublish()
	return u, err
}

// diff merges the shared state into the view; st.sem must be held.
func (f *Folder) diff() (Update, error) {
	st := f.st
	if st.validity != f.validity {
		return Update{}, fmt.Errorf("folder %s: %w", f.name, ErrUIDValidity)
	}
	u := Update{UIDNext: st.next}
	if st.version == f.version {
		u.NumMessages = uint32(len(f.msgs))
		f.highest = st.highest
		return u, nil
	}
	f.own()
	// Compact in place: kept[k] is written only after f.msgs[k] was read.
	kept := f.msgs[:0]
	j := 0
	for i, m := range f.msgs {
		for j < len(st.msgs) && st.msgs[j].uid < m.UID {
			j++
		}
		if j < len(st.msgs) && st.msgs[j].uid == m.UID {
			e := &st.msgs[j]
			// A modseq raised only by a compaction (to the floor) is no
			// news; a real change is above the floor or changed flags.
			if e.flags != m.Flags || e.modseq > m.ModSeq && e.modseq > st.floor {
				m.Flags, m.ModSeq = e.flags, st.modOf(e)
				u.Flags = append(u.Flags, FlagUpdate{Seq: uint32(len(kept) + 1), UID: m.UID, Flags: m.Flags, ModSeq: m.ModSeq})
			}
			kept = append(kept, m)
			j++
			continue
		}
		u.Expunged = append(u.Expunged, Expunged{Seq: uint32(i + 1), UID: m.UID})
	}
	for ; j < len(st.msgs); j++ {
		e := &st.msgs[j]
		if e.uid <= f.maxUID {
			continue // UIDs never go back; a lower one is not news to this view
		}
		m := Message{UID: e.uid, Flags: e.flags, Size: e.size, InternalDate: time.Unix(e.date, 0), ModSeq: st.modOf(e)}
		kept = append(kept, m)
		u.New = append(u.New, m)
		f.maxUID = e.uid
	}
	for a, b := 0, len(u.Expunged)-1; a < b; a, b = a+1, b-1 {
		u.Expunged[a], u.Expunged[b] = u.Expunged[b], u.Expunged[a]
	}
	f.msgs = kept
	f.version, f.next, f.highest = st.version, st.next, st.highest
	f.keywords = append(f.keywords[:0], st.keywords...)
	u.NumMessages = uint32(len(kept))
	return u, nil
}

func (f *Folder) writable() error {
	if f.closed {
		return fmt.Errorf("%w: folder closed", ErrInvalid)
	}
	if f.readOnly {
		return fmt.Errorf("%w: folder %s is read-only", ErrInvalid, f.name)
	}
	return nil
}

// SetFlags changes the flags of the given UIDs (IMAP STORE) by renaming
// their files, and returns the resulting flags of those still in the view
// (for the untagged FETCH responses). A message in new/ moves to cur/.
func (f *Folder) SetFlags(ctx context.Context, uids []uint32, op FlagOp, flags []string) ([]FlagUpdate, error) {
	r, err := f.StoreFlags(ctx, uids, op, flags, StoreOptions{})
	return r.Updates, err
}

// StoreOptions are STORE's modifiers.
type StoreOptions struct {
	// Conditional makes the store RFC 7162's UNCHANGEDSINCE: a message
	// whose modseq is above UnchangedSince is left alone and reported in
	// StoreResult.Modified.
	Conditional    bool
	UnchangedSince uint64
}

// StoreResult is what a STORE did.
type StoreResult struct {
	// Updates are the resulting flags and modseqs of the messages still
	// in the view, except the Modified ones.
	Updates []FlagUpdate
	// Modified lists, ascending, the UIDs a conditional store refused
	// (the MODIFIED response code).
	Modified []uint32
	// ModSeq is the modseq given to the changes; 0 when none changed.
	ModSeq uint64
}

// StoreFlags is SetFlags with STORE's modifiers. The condition is tested
// against each message's modseq under the folder's locks, so a change by
// another session or process in between is never overwritten.
func (f *Folder) StoreFlags(ctx context.Context, uids []uint32, op FlagOp, flags []string, opts StoreOptions) (StoreResult, error) {
	var res StoreResult
	if err := f.writable(); err != nil {
		return res, err
	}
	st := f.st
	if err := st.lock(ctx); err != nil {
		return res, err
	}
	defer st.unlock()
	fl, err := st.flagsFromNames(flags, op != FlagsRemove)
	if err != nil {
		return res, err
	}
	preCur := st.curBefore()
	var retry []uint32
	var modified map[uint32]bool
	change := func(uid uint32) error {
		e := st.get(uid)
		if e == nil {
			return nil
		}
		if opts.Conditional && st.modOf(e) > opts.UnchangedSince {
			if modified == nil {
				modified = make(map[uint32]bool)
			}
			if !modified[uid] {
				modified[uid] = true
				res.Modified = append(res.Modified, uid)
			}
			return nil
		}
		nf := e.flags
		switch op {
		case FlagsAdd:
			nf |= fl
		case FlagsRemove:
			nf &^= fl
		case FlagsReplace:
			nf = fl
		}
		if nf == e.flags && !e.inNew {
			return nil
		}
		name := fileName(e.base(), nf)
		from := st.msgPath(e)
		if err := os.Rename(from, filepath.Join(st.dir, "cur", name)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				retry = append(retry, uid)
				return nil
			}
			return ioError("rename", from, err)
		}
		if e.inNew {
			st.newMtime = 0
		}
		st.emit(record{op: 'R', uid: uid, name: name})
		return nil
	}
	for _, uid := range uids {
		if err := change(uid); err != nil {
			st.flush()
			return StoreResult{}, err
		}
	}
	if len(retry) > 0 {
		// Renamed under us by another program: look at the files again.
		if err := st.syncDirs(ctx, true); err != nil {
			return StoreResult{}, err
		}
		preCur = st.curBefore()
		todo := retry
		retry = nil
		for _, uid := range todo {
			if err := change(uid); err != nil {
				st.flush()
				return StoreResult{}, err
			}
		}
	}
	st.ownCurChange(preCur)
	res.ModSeq = st.opMod
	if err := st.flush(); err != nil {
		return StoreResult{}, err
	}
	f.keywords = append(f.keywords[:0], st.keywords...)
	res.Updates = make([]FlagUpdate, 0, len(uids))
	f.own()
	for _, uid := range uids {
		seq := f.SeqNum(uid)
		e := st.get(uid)
		if seq == 0 || e == nil || modified[uid] {
			continue
		}
		m := &f.msgs[seq-1]
		m.Flags = e.flags
		if ms := st.modOf(e); ms > m.ModSeq {
			m.ModSeq = ms
		}
		res.Updates = append(res.Updates, FlagUpdate{Seq: seq, UID: uid, Flags: e.flags, ModSeq: m.ModSeq})
	}
	slices.Sort(res.Modified)
	return res, nil
}

// Expunge removes the messages flagged \Deleted (IMAP EXPUNGE), or only
// those of them in uids when uids is not nil (UID EXPUNGE), and returns the
// ones removed from the view. The quota is credited.
func (f *Folder) Expunge(ctx context.Context, uids []uint32) ([]Expunged, error) {
	return f.remove(ctx, uids, true)
}

// Delete removes exactly the given messages whatever their flags (POP3
// DELE + QUIT, the MDA's duplicate cleanup).
func (f *Folder) Delete(ctx context.Context, uids []uint32) ([]Expunged, error) {
	return f.remove(ctx, uids, false)
}

func (f *Folder) remove(ctx context.Context, uids []uint32, deletedOnly bool) ([]Expunged, error) {
	if err := f.writable(); err != nil {
		return nil, err
	}
	st := f.st
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	var want map[uint32]bool
	if uids != nil {
		want = make(map[uint32]bool, len(uids))
		for _, u := range uids {
			want[u] = true
		}
	}
	preCur := st.curBefore()
	var bytes, count int64
	gone := map[uint32]bool{}
	var err error
	for i := range st.msgs {
		e := &st.msgs[i]
		if e.dead || (want != nil && !want[e.uid]) || (deletedOnly && e.flags&FlagDeleted == 0) {
			continue
		}
		p := st.msgPath(e)
		if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = ioError("remove", p, rerr)
			break
		}
		if e.inNew {
			st.newMtime = 0
		}
		bytes += e.size
		count++
		gone[e.uid] = true
		st.emit(record{op: 'X', uid: e.uid})
	}
	st.ownCurChange(preCur)
	if ferr := st.flush(); err == nil {
		err = ferr
	}
	st.unlock()
	f.mb.store.releaseQuota(f.mb.quota, bytes, count)
	return f.dropFromView(gone), err
}

// dropFromView removes UIDs from the snapshot and reports them in EXPUNGE
// order.
func (f *Folder) dropFromView(gone map[uint32]bool) []Expunged {
	if len(gone) == 0 {
		return nil
	}
	var out []Expunged
	f.own()
	kept := f.msgs[:0]
	for i, m := range f.msgs {
		if gone[m.UID] {
			out = append(out, Expunged{Seq: uint32(i + 1), UID: m.UID})
			continue
		}
		kept = append(kept, m)
	}
	f.msgs = kept
	for a, b := 0, len(out)-1; a < b; a, b = a+1, b-1 {
		out[a], out[b] = out[b], out[a]
	}
	return out
}

// Append stores a message in this folder (it appears in the view with the
// next Poll, as IMAP wants EXISTS after APPEND to the selected folder).
func (f *Folder) Append(ctx context.Context, r io.Reader, opts AppendOptions) (AppendResult, error) {
	if err := f.writable(); err != nil {
		return AppendResult{}, err
	}
	return f.mb.appendTo(ctx, f.st, r, opts)
}

// Append stores a message in a folder (IMAP APPEND): written to tmp/ and
// fsynced outside any lock, then renamed into cur/ and given its UID.
func (m *Mailbox) Append(ctx context.Context, folder string, r io.Reader, opts AppendOptions) (AppendResult, error) {
	dir, _, err := m.resolve(folder, true)
	if err != nil {
		return AppendResult{}, err
	}
	st := m.store.acquire(dir)
	defer m.store.release(st)
	return m.appendTo(ctx, st, r, opts)
}

func (m *Mailbox) appendTo(ctx context.Context, st *folderState, r io.Reader, opts AppendOptions) (AppendResult, error) {
	date := opts.InternalDate
	if date.IsZero() {
		date = time.Now()
	}
	charged, chargedBytes := false, int64(0)
	if opts.Size > 0 {
		if err := reserve(ctx, m.quota, opts.Size, 1); err != nil {
			return AppendResult{}, err
		}
		charged, chargedBytes = true, opts.Size
	}
	fail := func(tmp string, err error) (AppendResult, error) {
		if tmp != "" {
			os.Remove(tmp)
		}
		if charged {
			m.store.releaseQuota(m.quota, chargedBytes, 1)
		}
		return AppendResult{}, err
	}
	tmp := filepath.Join(st.dir, "tmp", m.store.uniqueBase(time.Now(), 0))
	n, vsize, err := writeMessage(ctx, tmp, r)
	if err != nil {
		return fail("", err)
	}
	if opts.Size > 0 && n != opts.Size {
		return fail(tmp, fmt.Errorf("%w: message is %d octets, %d announced", ErrInvalid, n, opts.Size))
	}
	if !charged {
		if err := reserve(ctx, m.quota, n, 1); err != nil {
			return fail(tmp, err)
		}
		charged, chargedBytes = true, n
	}
	// Dovecot reads a maildir message's internal date from its mtime, and
	// we from the name; keep both telling the same story.
	os.Chtimes(tmp, date, date)
	if err := st.lock(ctx); err != nil {
		return fail(tmp, err)
	}
	defer st.unlock()
	fl, err := st.flagsFromNames(opts.Flags, true)
	if err != nil {
		return fail(tmp, err)
	}
	name := fileName(withVSize(m.store.uniqueBase(date, n), vsize), fl)
	preCur := st.curBefore()
	dst := filepath.Join(st.dir, "cur", name)
	if err := os.Rename(tmp, dst); err != nil {
		return fail(tmp, ioError("rename", tmp, err))
	}
	if err := syncDir(filepath.Join(st.dir, "cur")); err != nil {
		return fail(dst, err)
	}
	uid := st.next
	st.emit(record{op: 'A', uid: uid, size: n, date: date.Unix(), name: name})
	st.ownCurChange(preCur)
	if err := st.flush(); err != nil {
		// The file stays and the next sync indexes it, so the quota
		// stays charged for it.
		charged = false
		return fail("", err)
	}
	return AppendResult{UIDValidity: st.validity, UID: uid, Size: n}, nil
}
