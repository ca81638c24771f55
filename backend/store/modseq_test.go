package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

func appendN(t testing.TB, mb *Mailbox, folder string, n int) []uint32 {
	t.Helper()
	var uids []uint32
	for i := 0; i < n; i++ {
		r, err := mb.Append(context.Background(), folder, bytes.NewReader(msg(i)), AppendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uids = append(uids, r.UID)
	}
	return uids
}

func mustPoll(t testing.TB, f *Folder) Update {
	t.Helper()
	u, err := f.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func modSeqOf(t testing.TB, f *Folder, uid uint32) uint64 {
	t.Helper()
	seq := f.SeqNum(uid)
	if seq == 0 {
		t.Fatalf("uid %d not in the view", uid)
	}
	return f.Messages()[seq-1].ModSeq
}

// Every kind of change raises the message's modseq above the folder's
// previous HIGHESTMODSEQ, and ChangedSince/ExpungedSince name exactly the
// messages changed since a point; a change that changes nothing does not.
func TestModSeqChanges(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mb := mustOpen(t, s, "ms@example.org")
	uids := appendN(t, mb, "INBOX", 5)
	f := mustSelect(t, mb, "INBOX")
	for _, m := range f.Messages() {
		if m.ModSeq == 0 || m.ModSeq > f.HighestModSeq() {
			t.Fatalf("uid %d modseq %d, highest %d", m.UID, m.ModSeq, f.HighestModSeq())
		}
	}
	tests := []struct {
		name    string
		do      func() error
		changed []uint32 // ChangedSince(before)
		gone    []uint32 // ExpungedSince(before)
	}{
		{"add flag", func() error { _, err := f.SetFlags(ctx, uids[:2], FlagsAdd, []string{`\Seen`}); return err }, uids[:2], nil},
		{"same flag again", func() error { _, err := f.SetFlags(ctx, uids[:2], FlagsAdd, []string{`\Seen`}); return err }, nil, nil},
		{"keyword", func() error { _, err := f.SetFlags(ctx, uids[2:3], FlagsAdd, []string{"$Label1"}); return err }, uids[2:3], nil},
		{"replace", func() error { _, err := f.SetFlags(ctx, uids[:1], FlagsReplace, []string{`\Flagged`}); return err }, uids[:1], nil},
		{"append", func() error { _, err := mb.Append(ctx, "INBOX", bytes.NewReader(msg(9)), AppendOptions{}); return err }, []uint32{uids[4] + 1}, nil},
		{"expunge", func() error {
			if _, err := f.SetFlags(ctx, uids[3:4], FlagsAdd, []string{`\Deleted`}); err != nil {
				return err
			}
			_, err := f.Expunge(ctx, nil)
			return err
		}, nil, uids[3:4]},
		{"delivery", func() error {
			_, err := s.Deliver(ctx, Recipient{Address: "ms@example.org"}, bytes.NewReader(msg(10)))
			return err
		}, []uint32{uids[4] + 2}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mustPoll(t, f)
			before := f.HighestModSeq()
			if err := tc.do(); err != nil {
				t.Fatal(err)
			}
			mustPoll(t, f)
			after := f.HighestModSeq()
			if (len(tc.changed)+len(tc.gone) > 0) != (after > before) {
				t.Fatalf("HIGHESTMODSEQ %d → %d", before, after)
			}
			changed, err := f.ChangedSince(ctx, before)
			if err != nil || !slices.Equal(changed, tc.changed) {
				t.Fatalf("ChangedSince(%d) = %v, %v; want %v", before, changed, err, tc.changed)
			}
			for _, uid := range changed {
				if ms := modSeqOf(t, f, uid); ms <= before || ms > after {
					t.Errorf("uid %d modseq %d not in (%d, %d]", uid, ms, before, after)
				}
			}
			gone, complete, err := f.ExpungedSince(ctx, before)
			if err != nil || !complete || !slices.Equal(gone, tc.gone) {
				t.Fatalf("ExpungedSince(%d) = %v, %v, %v; want %v", before, gone, complete, err, tc.gone)
			}
			st, err := mb.Status(ctx, "INBOX")
			if err != nil || st.HighestModSeq != after {
				t.Fatalf("STATUS HIGHESTMODSEQ %d, view %d (%v)", st.HighestModSeq, after, err)
			}
		})
	}
}

// Two Store instances on one tree are two processes: the modseqs each
// hands out are above every one the other handed out before, each sees
// the other's changes with their modseqs, and a restart keeps them all.
func TestModSeqAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s1 := &Store{Root: root, Hostname: "one"}
	s2 := &Store{Root: root, Hostname: "two"}
	mb1 := mustOpen(t, s1, "two@example.org")
	mb2 := mustOpen(t, s2, "two@example.org")
	uids := appendN(t, mb1, "INBOX", 4)
	f1 := mustSelect(t, mb1, "INBOX")
	f2 := mustSelect(t, mb2, "INBOX")
	last := max(f1.HighestModSeq(), f2.HighestModSeq())
	views := []*Folder{f1, f2}
	for i := 0; i < 20; i++ {
		f := views[i%2]
		uid := uids[i%len(uids)]
		op := FlagsAdd
		if (i/len(uids))%2 == 1 {
			op = FlagsRemove
		}
		res, err := f.StoreFlags(ctx, []uint32{uid}, op, []string{`\Answered`}, StoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.ModSeq <= last {
			t.Fatalf("change %d got modseq %d after %d", i, res.ModSeq, last)
		}
		last = res.ModSeq
		for _, v := range views {
			mustPoll(t, v)
			if v.HighestModSeq() != last || modSeqOf(t, v, uid) != last {
				t.Fatalf("change %d: view sees highest %d, uid %d at %d; want %d", i, v.HighestModSeq(), uid, modSeqOf(t, v, uid), last)
			}
		}
	}
	want := map[uint32]uint64{}
	for _, m := range f1.Messages() {
		want[m.UID] = m.ModSeq
	}
	s3 := &Store{Root: root}
	f3 := mustSelect(t, mustOpen(t, s3, "two@example.org"), "INBOX")
	if f3.HighestModSeq() != last {
		t.Fatalf("after restart HIGHESTMODSEQ %d, want %d", f3.HighestModSeq(), last)
	}
	for _, m := range f3.Messages() {
		if want[m.UID] != m.ModSeq {
			t.Errorf("after restart uid %d modseq %d, want %d", m.UID, m.ModSeq, want[m.UID])
		}
	}
}

// forceCompaction rewrites a folder's index as a snapshot, as flush does
// when the log has grown.
func forceCompaction(t testing.TB, s *Store, dir string) {
	t.Helper()
	st := s.acquire(dir)
	defer s.release(st)
	if err := st.lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer st.unlock()
	if err := st.writeSnapshot(); err != nil {
		t.Fatal(err)
	}
}

// A compaction keeps the newest changes exact, raises older ones to the
// floor, and keeps the expunges above it; a client with an older modseq
// learns that the expunge history is incomplete. The history stays
// bounded however many expunges happen.
func TestModSeqCompactionBoundsHistory(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	s.modLogLimit = 5
	mb := mustOpen(t, s, "hist@example.org")
	uids := appendN(t, mb, "INBOX", 30)
	f := mustSelect(t, mb, "INBOX")
	start := f.HighestModSeq()
	var marks []uint64 // highest before expunge i
	for _, uid := range uids[:20] {
		marks = append(marks, f.HighestModSeq())
		if _, err := f.Delete(ctx, []uint32{uid}); err != nil {
			t.Fatal(err)
		}
		mustPoll(t, f)
	}
	if _, err := f.SetFlags(ctx, uids[25:26], FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	mustPoll(t, f)
	highest := f.HighestModSeq()
	gone, complete, _ := f.ExpungedSince(ctx, start)
	if !complete || !slices.Equal(gone, uids[:20]) {
		t.Fatalf("before compaction: %v %v", gone, complete)
	}
	forceCompaction(t, s, mb.Dir())

	for _, s := range []*Store{s, {Root: s.Root}} { // this process, and the next
		f := mustSelect(t, mustOpen(t, s, "hist@example.org"), "INBOX")
		if f.HighestModSeq() != highest {
			t.Fatalf("HIGHESTMODSEQ %d after compaction, want %d", f.HighestModSeq(), highest)
		}
		st := f.st
		if n := len(st.modLog); n > 5 || len(st.expunged) > 5 {
			t.Fatalf("history not bounded: %d changes, %d expunges kept", n, len(st.expunged))
		}
		// The newest 4 expunges and the flag change are exact.
		gone, complete, _ := f.ExpungedSince(ctx, marks[16])
		if !complete || !slices.Equal(gone, uids[16:20]) {
			t.Errorf("ExpungedSince(recent) = %v, %v; want %v, true", gone, complete, uids[16:20])
		}
		if _, complete, _ := f.ExpungedSince(ctx, start); complete {
			t.Error("ExpungedSince(too old) claims to be complete")
		}
		changed, _ := f.ChangedSince(ctx, marks[19])
		if !slices.Contains(changed, uids[25]) {
			t.Errorf("ChangedSince(%d) = %v, misses uid %d", marks[19], changed, uids[25])
		}
		// Too old: every message counts as changed, never one missed.
		if changed, _ := f.ChangedSince(ctx, start); len(changed) != f.Len() {
			t.Errorf("ChangedSince(too old) = %d messages of %d", len(changed), f.Len())
		}
		for _, m := range f.Messages() {
			if m.ModSeq > highest || m.ModSeq == 0 {
				t.Errorf("uid %d modseq %d (highest %d)", m.UID, m.ModSeq, highest)
			}
		}
	}
}

// stripRecords rewrites an index without the records of the given kinds,
// as an older vmaild's compaction leaves it.
func stripRecords(t *testing.T, dir string, ops string) {
	t.Helper()
	p := filepath.Join(dir, indexName)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if len(line) > 9 && strings.ContainsRune(ops, rune(line[9])) {
			continue
		}
		out = append(out, line...)
	}
	tmp := p + ".strip"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// An index without modseq records (an older vmaild's) gets a starting
// modseq above any the folder had, and two processes that open it agree
// on it; its \Recent boundary starts at the messages still in new/.
func TestModSeqOldIndex(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := &Store{Root: root}
	mb := mustOpen(t, s, "old@example.org")
	appendN(t, mb, "INBOX", 3)
	if _, err := s.Deliver(ctx, Recipient{Address: "old@example.org"}, bytes.NewReader(msg(3))); err != nil {
		t.Fatal(err)
	}
	f := mustSelect(t, mb, "INBOX")
	before := f.HighestModSeq()
	f.Close()
	forceCompaction(t, s, mb.Dir())
	stripRecords(t, mb.Dir(), "ZQB")

	var views []*Folder
	for i := 0; i < 2; i++ {
		s := &Store{Root: root}
		f, err := mustOpen(t, s, "old@example.org").Select(ctx, "INBOX", true)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		views = append(views, f)
	}
	h := views[0].HighestModSeq()
	if h <= before || views[1].HighestModSeq() != h {
		t.Fatalf("HIGHESTMODSEQ %d then %d after %d: not above, or not agreed", h, views[1].HighestModSeq(), before)
	}
	for _, m := range views[1].Messages() {
		if m.ModSeq != h {
			t.Errorf("uid %d modseq %d, want the start %d", m.UID, m.ModSeq, h)
		}
	}
	if _, complete, _ := views[0].ExpungedSince(ctx, before); complete {
		t.Error("expunge history before the restart claimed complete")
	}
	// The delivered message was in new/: \Recent for the first session.
	if n := views[0].NumRecent(); n != 1 {
		t.Errorf("EXAMINE: %d recent, want 1 (the one in new/)", n)
	}
}

// A change record without its modseq (a torn write cut between them, or
// an older vmaild's append) gets a modseq above every other when read.
func TestModSeqUnstampedTail(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s := &Store{Root: root}
	mb := mustOpen(t, s, "tail@example.org")
	uids := appendN(t, mb, "INBOX", 2)
	f := mustSelect(t, mb, "INBOX")
	before := f.HighestModSeq()
	seq := f.SeqNum(uids[0])
	name := fileName(f.st.msgs[seq-1].base(), FlagSeen)
	from := f.st.msgPath(&f.st.msgs[seq-1])
	if err := os.Rename(from, filepath.Join(mb.Dir(), "cur", name)); err != nil {
		t.Fatal(err)
	}
	idx, err := os.OpenFile(filepath.Join(mb.Dir(), indexName), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	line := appendRecord(nil, record{op: 'R', uid: uids[0], name: name})
	q := appendRecord(nil, record{op: 'Q', uid: uids[0], a: int64(before + 1)})
	idx.Write(append(line, q[:len(q)/2]...)) // torn in the middle of Q
	idx.Close()

	f2 := mustSelect(t, mustOpen(t, &Store{Root: root}, "tail@example.org"), "INBOX")
	ms := modSeqOf(t, f2, uids[0])
	if ms <= before || f2.HighestModSeq() != ms || f2.Messages()[0].Flags != FlagSeen {
		t.Fatalf("torn change: uid modseq %d, highest %d, before %d, flags %b", ms, f2.HighestModSeq(), before, f2.Messages()[0].Flags)
	}
	changed, _ := f2.ChangedSince(ctx, before)
	if !slices.Equal(changed, uids[:1]) {
		t.Fatalf("ChangedSince = %v", changed)
	}
	// The first process reads the repair, and agrees.
	mustPoll(t, f)
	if f.HighestModSeq() != ms || modSeqOf(t, f, uids[0]) != ms {
		t.Fatalf("other process: highest %d, uid %d, want %d", f.HighestModSeq(), modSeqOf(t, f, uids[0]), ms)
	}
}

// UNCHANGEDSINCE refuses the messages another session changed after the
// client's modseq and changes the others under one new modseq.
func TestUnchangedSince(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mb := mustOpen(t, s, "cond@example.org")
	uids := appendN(t, mb, "INBOX", 4)
	a := mustSelect(t, mb, "INBOX")
	b := mustSelect(t, mustOpen(t, &Store{Root: s.Root}, "cond@example.org"), "INBOX")
	known := a.HighestModSeq()
	if _, err := b.SetFlags(ctx, uids[1:2], FlagsAdd, []string{`\Flagged`}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		since    uint64
		uids     []uint32
		modified []uint32
		updated  []uint32
	}{
		{"one changed elsewhere", known, uids[:3], uids[1:2], []uint32{uids[0], uids[2]}},
		{"zero refuses all", 0, uids[3:], uids[3:], nil},
		{"current passes", 1 << 62, uids[1:2], nil, uids[1:2]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mustPoll(t, a)
			h := a.HighestModSeq()
			res, err := a.StoreFlags(ctx, tc.uids, FlagsAdd, []string{`\Seen`}, StoreOptions{Conditional: true, UnchangedSince: tc.since})
			if err != nil {
				t.Fatal(err)
			}
			var updated []uint32
			for _, u := range res.Updates {
				updated = append(updated, u.UID)
				if u.Flags&FlagSeen == 0 || u.ModSeq != res.ModSeq {
					t.Errorf("update %+v, store modseq %d", u, res.ModSeq)
				}
			}
			if !slices.Equal(res.Modified, tc.modified) || !slices.Equal(updated, tc.updated) {
				t.Fatalf("modified %v updated %v; want %v %v", res.Modified, updated, tc.modified, tc.updated)
			}
			if (len(tc.updated) > 0) != (res.ModSeq > h) {
				t.Fatalf("store modseq %d, highest before %d", res.ModSeq, h)
			}
			for _, uid := range tc.modified {
				mustPoll(t, a)
				if a.Messages()[a.SeqNum(uid)-1].Flags&FlagSeen != 0 {
					t.Errorf("refused uid %d changed anyway", uid)
				}
			}
		})
	}
}

// \Recent: the messages that arrived since the last read-write SELECT are
// \Recent in exactly one of the sessions that select the folder at once,
// of this process or another; EXAMINE shows them without taking them,
// and the boundary survives a restart.
func TestRecentExactlyOnce(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	stores := []*Store{{Root: root}, {Root: root}}
	mb0 := mustOpen(t, stores[0], "recent@example.org")
	for i := 0; i < 5; i++ {
		if _, err := stores[0].Deliver(ctx, Recipient{Address: "recent@example.org"}, bytes.NewReader(msg(i))); err != nil {
			t.Fatal(err)
		}
	}
	ex, err := mb0.Select(ctx, "INBOX", true)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	if ex.NumRecent() != 5 {
		t.Fatalf("EXAMINE: %d recent", ex.NumRecent())
	}
	const n = 8
	got := make([]int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[i%2]
			mb, err := s.OpenMailbox(ctx, Account{Address: "recent@example.org"})
			if err != nil {
				t.Error(err)
				return
			}
			f, err := mb.Select(ctx, "INBOX", false)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			got[i] = f.NumRecent()
		}()
	}
	wg.Wait()
	slices.Sort(got)
	if want := append(make([]int, n-1), 5); !reflect.DeepEqual(got, want) {
		t.Fatalf("recent counts %v, want one session with all 5", got)
	}
	st, err := mb0.Status(ctx, "INBOX")
	if err != nil || st.Recent != 0 {
		t.Fatalf("STATUS RECENT %d after the claim (%v)", st.Recent, err)
	}

	// New mail while two sessions are selected: the first to poll gets it.
	a := mustSelect(t, mb0, "INBOX")
	b := mustSelect(t, mustOpen(t, stores[1], "recent@example.org"), "INBOX")
	if a.NumRecent()+b.NumRecent() != 0 {
		t.Fatal("recent given twice")
	}
	appendN(t, mb0, "INBOX", 2)
	var wg2 sync.WaitGroup
	for _, f := range []*Folder{a, b} {
		wg2.Add(1)
		go func() { defer wg2.Done(); mustPoll(t, f) }()
	}
	wg2.Wait()
	if ra, rb := a.NumRecent(), b.NumRecent(); ra+rb != 2 || ra != 0 && rb != 0 {
		t.Fatalf("after poll: %d and %d recent, want 2 in one", ra, rb)
	}
	uid := a.Messages()[a.Len()-1].UID
	if a.IsRecent(uid) == b.IsRecent(uid) {
		t.Fatalf("uid %d recent in both or neither", uid)
	}
	// The EXAMINE session keeps showing what it saw, and gets nothing
	// a read-write session claimed.
	if mustPoll(t, ex); ex.NumRecent() != 5 || ex.IsRecent(uid) {
		t.Fatalf("EXAMINE after the claims: %d recent, uid %d recent %v", ex.NumRecent(), uid, ex.IsRecent(uid))
	}
	f := mustSelect(t, mustOpen(t, &Store{Root: root}, "recent@example.org"), "INBOX")
	if f.NumRecent() != 0 {
		t.Fatalf("after restart %d recent", f.NumRecent())
	}
}

// A warm SELECT shares the state's message list; a session that changes
// its view copies it first, so the others never see its changes early.
func TestSharedSnapshotCopyOnWrite(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mb := mustOpen(t, s, "cow@example.org")
	uids := appendN(t, mb, "INBOX", 3)
	a := mustSelect(t, mb, "INBOX")
	b := mustSelect(t, mb, "INBOX")
	if &a.Messages()[0] != &b.Messages()[0] {
		t.Fatal("warm SELECT copied the message list")
	}
	if _, err := a.SetFlags(ctx, uids[:1], FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	if b.Messages()[0].Flags != 0 {
		t.Fatal("another session's STORE changed this view before its Poll")
	}
	if u := mustPoll(t, b); len(u.Flags) != 1 || u.Flags[0].Flags != FlagSeen || u.Flags[0].ModSeq != a.Messages()[0].ModSeq {
		t.Fatalf("poll: %+v", u.Flags)
	}
	// Closing every session keeps the folder warm.
	a.Close()
	b.Close()
	st := s.acquire(mb.Dir())
	defer s.release(st)
	if !st.loaded || len(st.msgs) != 3 {
		t.Fatal("idle folder state dropped")
	}
}

func TestIdleFoldersBounded(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	s.IdleFolders = 2
	mb := mustOpen(t, s, "idle@example.org")
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("F%d", i)
		if err := mb.CreateFolder(ctx, name); err != nil {
			t.Fatal(err)
		}
		if _, err := mb.Status(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	n := len(s.idle)
	s.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d idle folders kept, limit 2", n)
	}
}
