package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

var tenKB = bytes.Repeat([]byte("0123456789abcdef\r\n"), 10240/18)

// BenchmarkFsync is the physical limit: write a small file and fsync it,
// in the same kind of directory delivery uses.
func BenchmarkFsync(b *testing.B) {
	dir := b.TempDir()
	buf := make([]byte, 1024)
	i := 0
	for b.Loop() {
		f, err := os.Create(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			b.Fatal(err)
		}
		f.Write(buf)
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "fsyncs/s")
}

// BenchmarkDeliver: 10 KB messages to one user (file fsync + dir fsync).
func BenchmarkDeliver(b *testing.B) {
	ctx := context.Background()
	s := &Store{Root: b.TempDir(), Hostname: "bench"}
	rc := Recipient{Address: "bench@example.org"}
	b.ReportAllocs()
	b.SetBytes(int64(len(tenKB)))
	for b.Loop() {
		if _, err := s.Deliver(ctx, rc, bytes.NewReader(tenKB)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkDeliverParallel1000Users: 10 KB messages to 1,000 users from
// parallel goroutines; deliveries share no lock.
func BenchmarkDeliverParallel1000Users(b *testing.B) {
	ctx := context.Background()
	s := &Store{Root: b.TempDir(), Hostname: "bench"}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetBytes(int64(len(tenKB)))
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rc := Recipient{Address: fmt.Sprintf("u%d@example.org", n.Add(1)%1000)}
			if _, err := s.Deliver(ctx, rc, bytes.NewReader(tenKB)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// bigFolder creates a folder of n messages directly (no fsyncs) and
// indexes it once.
func bigFolder(b *testing.B, n int) (*Store, string) {
	b.Helper()
	s := &Store{Root: b.TempDir(), Hostname: "bench"}
	mb, err := s.OpenMailbox(context.Background(), Account{Address: "big@example.org"})
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 300)
	cur := filepath.Join(mb.Dir(), "cur")
	for i := 0; i < n; i++ {
		flags := ":2,S"
		if i%7 == 0 {
			flags = ":2,FRS"
		}
		name := fmt.Sprintf("%d.M%dP1.bench,S=300,W=310%s", 1700000000+i, i, flags)
		if err := os.WriteFile(filepath.Join(cur, name), body, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	st, err := mb.Status(context.Background(), "INBOX")
	if err != nil || int(st.Messages) != n {
		b.Fatalf("fixture: %+v %v", st, err)
	}
	return s, mb.Dir()
}

const bigN = 100_000

// BenchmarkOpenFolder100k: a new process opening (SELECT) an indexed
// folder of 100,000 messages: read and parse the index, stat new/ and cur/,
// build the session's snapshot. No message file is touched.
func BenchmarkOpenFolder100k(b *testing.B) {
	s, _ := bigFolder(b, bigN)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s2 := &Store{Root: s.Root}
		mb, err := s2.OpenMailbox(ctx, Account{Address: "big@example.org"})
		if err != nil {
			b.Fatal(err)
		}
		f, err := mb.Select(ctx, "INBOX", true)
		if err != nil || f.Len() != bigN {
			b.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkListFlags100k: walking UIDs and flag names of 100,000
// messages of a selected folder (FETCH 1:* (UID FLAGS) without the wire).
func BenchmarkListFlags100k(b *testing.B) {
	s, _ := bigFolder(b, bigN)
	ctx := context.Background()
	mb, _ := s.OpenMailbox(ctx, Account{Address: "big@example.org"})
	f, err := mb.Select(ctx, "INBOX", true)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, m := range f.Messages() {
			n += len(f.FlagNames(m.Flags)) + int(m.UID&1)
		}
		if n == 0 {
			b.Fatal("no flags")
		}
	}
}

// BenchmarkPollIdle100k: the per-command Poll of a 100,000-message folder
// when nothing changed.
func BenchmarkPollIdle100k(b *testing.B) {
	s, _ := bigFolder(b, bigN)
	ctx := context.Background()
	mb, _ := s.OpenMailbox(ctx, Account{Address: "big@example.org"})
	f, _ := mb.Select(ctx, "INBOX", false)
	defer f.Close()
	f.Poll(ctx)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Poll(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSetFlag100k: STORE +FLAGS on one message of a 100,000-message
// folder: one rename and one appended, fsynced index record; no rescan.
func BenchmarkSetFlag100k(b *testing.B) {
	s, _ := bigFolder(b, bigN)
	ctx := context.Background()
	mb, _ := s.OpenMailbox(ctx, Account{Address: "big@example.org"})
	f, _ := mb.Select(ctx, "INBOX", false)
	defer f.Close()
	ops := []FlagOp{FlagsAdd, FlagsRemove}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		uid := f.Messages()[i%bigN].UID
		if _, err := f.SetFlags(ctx, []uint32{uid}, ops[(i/bigN)%2], []string{`\Answered`}); err != nil {
			b.Fatal(err)
		}
		if _, err := f.Poll(ctx); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkSelect100k: SELECT of a 100,000-message folder. cold: a new
// Store (a new process) reads the index; warm: another session of the
// same process has the folder open, so its state is in memory.
func BenchmarkSelect100k(b *testing.B) {
	s, _ := bigFolder(b, bigN)
	ctx := context.Background()
	acct := Account{Address: "big@example.org"}
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s2 := &Store{Root: s.Root}
			mb, err := s2.OpenMailbox(ctx, acct)
			if err != nil {
				b.Fatal(err)
			}
			f, err := mb.Select(ctx, "INBOX", false)
			if err != nil || f.Len() != bigN {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	b.Run("idle", func(b *testing.B) {
		// No session has it open; the store kept it in memory.
		mb, err := s.OpenMailbox(ctx, acct)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			f, err := mb.Select(ctx, "INBOX", false)
			if err != nil || f.Len() != bigN {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	b.Run("warm", func(b *testing.B) {
		mb, err := s.OpenMailbox(ctx, acct)
		if err != nil {
			b.Fatal(err)
		}
		keep, err := mb.Select(ctx, "INBOX", true)
		if err != nil {
			b.Fatal(err)
		}
		defer keep.Close()
		b.ReportAllocs()
		for b.Loop() {
			f, err := mb.Select(ctx, "INBOX", false)
			if err != nil || f.Len() != bigN {
				b.Fatal(err)
			}
			f.Close()
		}
	})
}

// BenchmarkChangedSince100k: what a CONDSTORE resync asks of the store
// (FETCH (CHANGEDSINCE n) and VANISHED (EARLIER)) after 10 flag changes
// in a 100,000-message folder.
func BenchmarkChangedSince100k(b *testing.B) {
	s, _ := bigFolder(b, bigN)
	ctx := context.Background()
	mb, _ := s.OpenMailbox(ctx, Account{Address: "big@example.org"})
	f, err := mb.Select(ctx, "INBOX", false)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	since := f.HighestModSeq()
	for i := 0; i < 10; i++ {
		uid := f.Messages()[i*(bigN/10)].UID
		if _, err := f.SetFlags(ctx, []uint32{uid}, FlagsAdd, []string{"$Bench"}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := f.Poll(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		uids, err := f.ChangedSince(ctx, since)
		if err != nil || len(uids) != 10 {
			b.Fatal(uids, err)
		}
		if _, complete, err := f.ExpungedSince(ctx, since); err != nil || !complete {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchFlags100k: the store's side of UID FETCH 1:* (FLAGS):
// every message's UID and flag names, with one reused slice, so nothing
// is allocated per message.
func BenchmarkFetchFlags100k(b *testing.B) {
	s, _ := bigFolder(b, bigN)
	ctx := context.Background()
	mb, _ := s.OpenMailbox(ctx, Account{Address: "big@example.org"})
	f, err := mb.Select(ctx, "INBOX", true)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var names []string
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, m := range f.Messages() {
			names = f.AppendFlagNames(names[:0], m.Flags)
			n += len(names) + int(m.UID&1)
		}
		if n == 0 {
			b.Fatal("no flags")
		}
	}
}

// BenchmarkRebuild100k: SELECT of a 100,000-message folder whose index
// is gone (a new Store each time, the index file removed first): the
// index is rebuilt from the file names of cur/ alone.
func BenchmarkRebuild100k(b *testing.B) {
	s, dir := bigFolder(b, bigN)
	ctx := context.Background()
	acct := Account{Address: "big@example.org"}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if err := os.Remove(filepath.Join(dir, indexName)); err != nil {
			b.Fatal(err)
		}
		s2 := &Store{Root: s.Root}
		b.StartTimer()
		mb, err := s2.OpenMailbox(ctx, acct)
		if err != nil {
			b.Fatal(err)
		}
		f, err := mb.Select(ctx, "INBOX", false)
		if err != nil || f.Len() != bigN {
			b.Fatal(err)
		}
		f.Close()
	}
}
