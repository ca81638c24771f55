package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// hostileMessages are contents whose CRLF form is easy to get wrong; the
// POP3 tests use the same shapes.
var hostileMessages = []struct{ name, in, want string }{
	{"empty", "", ""},
	{"crlf", "A: b\r\n\r\nbody\r\n", "A: b\r\n\r\nbody\r\n"},
	{"bare LF", "A: b\n\nbody\n", "A: b\r\n\r\nbody\r\n"},
	{"bare CR", "A: b\r\rc\r\n", "A: b\r\rc\r\n"},
	{"mixed", "A: b\r\nC: d\n\r\nx\ry\nz\r\n", "A: b\r\nC: d\r\n\r\nx\ry\r\nz\r\n"},
	{"no final newline", "A: b\n\nlast", "A: b\r\n\r\nlast\r\n"},
	{"final bare CR", "A: b\n\nlast\r", "A: b\r\n\r\nlast\r\r\n"},
	{"CR CR LF", "\r\r\n", "\r\r\n"},
	{"lone LF", "\n", "\r\n"},
	{"lone CR", "\r", "\r\r\n"},
	{"dots", ".\n..\r\n.x\n", ".\r\n..\r\n.x\r\n"},
	{"header only", "Subject: x\nFrom: a@b", "Subject: x\r\nFrom: a@b\r\n"},
	{"long line", strings.Repeat("y", 70000) + "\n", strings.Repeat("y", 70000) + "\r\n"},
	{"CR at buffer edge", strings.Repeat("y", 32*1024-1) + "\r\n.", strings.Repeat("y", 32*1024-1) + "\r\n.\r\n"},
	{"8-bit and NUL", "\xff\x00\n", "\xff\x00\r\n"},
}

// TestVirtualSize checks the CRLF form and its size on every hostile
// shape, read whole and one byte at a time (so that a CRLF is split across
// writes).
func TestVirtualSize(t *testing.T) {
	for _, tt := range hostileMessages {
		t.Run(tt.name, func(t *testing.T) {
			for _, oneByte := range []bool{false, true} {
				var r = strings.NewReader(tt.in)
				var out bytes.Buffer
				var n int64
				var err error
				if oneByte {
					n, err = CopyCRLF(&out, iotest.OneByteReader(r))
				} else {
					n, err = CopyCRLF(&out, r)
				}
				if err != nil {
					t.Fatal(err)
				}
				if out.String() != tt.want || n != int64(len(tt.want)) {
					t.Errorf("oneByte=%v: CopyCRLF = %q (%d), want %q", oneByte, trunc(out.String()), n, trunc(tt.want))
				}
			}
			if n, err := VirtualSize(strings.NewReader(tt.in)); err != nil || n != int64(len(tt.want)) {
				t.Errorf("VirtualSize = %d, %v; want %d", n, err, len(tt.want))
			}
		})
	}
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func TestVSizeFromName(t *testing.T) {
	tests := []struct {
		base string
		n    int64
		ok   bool
	}{
		{"1700000000.M1P2.host,S=209,W=220", 220, true},
		{"1700000000.M1P2.host,W=220,S=209", 220, true},
		{"1700000000.M1P2.host,S=209", 0, false},
		{"1700000000.M1P2.host,W=", 0, false},
		{"1700000000.M1P2.host,W=-1", 0, false},
		{"1700000000.M1P2.host,W=99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		if n, ok := vsizeFromName(tt.base); n != tt.n || ok != tt.ok {
			t.Errorf("vsizeFromName(%q) = %d, %v", tt.base, n, ok)
		}
	}
}

// TestVirtualSizeInNames checks that every way a message enters a folder
// (Deliver, DeliverGroups, DeliverFile, APPEND, COPY) names it with the
// W= that its CRLF form has, for every hostile shape, and that
// VirtualSizes reports it without reading the file.
func TestVirtualSizeInNames(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	spool := filepath.Join(t.TempDir(), "spool")
	for _, tt := range hostileMessages {
		want := int64(len(tt.want))
		if d, err := s.Deliver(ctx, Recipient{Address: "a@example.org"}, strings.NewReader(tt.in)); err != nil || d.VirtualSize != want {
			t.Fatalf("%s: Deliver: %+v, %v", tt.name, d, err)
		}
		d := s.DeliverGroups(ctx, []Group{{Recipients: []Recipient{{Address: "a@example.org"}, {Address: "b@example.org"}}, Body: strings.NewReader(tt.in)}})
		for _, d := range d[0] {
			if d.Err != nil || d.VirtualSize != want {
				t.Fatalf("%s: DeliverGroups: %+v", tt.name, d)
			}
		}
		if err := os.WriteFile(spool, []byte(tt.in), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, d := range s.DeliverFile(ctx, []Recipient{{Address: "a@example.org"}}, spool) {
			if d.Err != nil || d.VirtualSize != want {
				t.Fatalf("%s: DeliverFile: %+v", tt.name, d)
			}
		}
		os.Remove(spool)
	}
	mb := mustOpen(t, s, "a@example.org")
	for _, tt := range hostileMessages {
		if _, err := mb.Append(ctx, "Drafts", strings.NewReader(tt.in), AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	drafts := mustSelect(t, mb, "Drafts")
	var all []uint32
	for _, m := range drafts.Messages() {
		all = append(all, m.UID)
	}
	if _, err := drafts.Copy(ctx, all, "Sent"); err != nil {
		t.Fatal(err)
	}
	for _, folder := range []string{"INBOX", "Drafts", "Sent"} {
		f := mustSelect(t, mb, folder)
		sizes, err := f.VirtualSizes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range f.Messages() {
			base, err := f.UniqueID(ctx, m.UID)
			if err != nil {
				t.Fatal(err)
			}
			w, ok := vsizeFromName(base)
			if !ok || w != sizes[i] {
				t.Errorf("%s uid %d: name %q, VirtualSizes %d", folder, m.UID, base, sizes[i])
			}
			r, err := f.Open(ctx, m.UID)
			if err != nil {
				t.Fatal(err)
			}
			n, err := VirtualSize(r)
			r.Close()
			if err != nil || n != w {
				t.Errorf("%s uid %d: W=%d, content's CRLF form %d", folder, m.UID, w, n)
			}
		}
	}
}

// TestVirtualSizeCached checks that a message without W= in its name
// (dropped in by other software, or written by an older vmaild) is read
// once: its size is recorded in the index, which a new process (a new
// Store) reads back, through compaction too, and the file is not read
// again. The index written before V records existed stays readable.
func TestVirtualSizeCached(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	dir, err := s.MaildirPath("a@example.org", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := makeMaildir(dir); err != nil {
		t.Fatal(err)
	}
	var want []int64
	for i, tt := range hostileMessages {
		name := fmt.Sprintf("%d.M%dP1.mx,S=%d", 1700000000+i, i, len(tt.in))
		if err := os.WriteFile(filepath.Join(dir, "new", name), []byte(tt.in), 0o600); err != nil {
			t.Fatal(err)
		}
		want = append(want, int64(len(tt.want)))
	}
	sizesOf := func(s *Store) ([]int64, []string) {
		t.Helper()
		f := mustSelect(t, mustOpen(t, s, "a@example.org"), "INBOX")
		defer f.Close()
		sizes, err := f.VirtualSizes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all, err := f.UniqueIDs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for i, m := range f.Messages() {
			id, err := f.UniqueID(ctx, m.UID)
			if err != nil || id != all[i] {
				t.Fatalf("UniqueID %q, %v; UniqueIDs %q", id, err, all[i])
			}
			ids = append(ids, fmt.Sprint(f.UIDValidity(), m.UID, id))
		}
		return sizes, ids
	}
	// The index as an older vmaild leaves it: no V records.
	first, ids := sizesOf(&Store{Root: s.Root, Hostname: "old.example"})
	if !slices.Equal(first, want) {
		t.Fatalf("first sizes %v, want %v", first, want)
	}
	idx, err := os.ReadFile(filepath.Join(dir, indexName))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(idx, []byte(" V ")); n != len(want) {
		t.Errorf("%d V records in the index, want %d:\n%s", n, len(want), idx)
	}
	// Make every file lie about its content: a size read from it now
	// would differ from the recorded one.
	ents, _ := os.ReadDir(filepath.Join(dir, "new"))
	for _, e := range ents {
		if err := os.WriteFile(filepath.Join(dir, "new", e.Name()), []byte("changed\n\n\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	again, ids2 := sizesOf(&Store{Root: s.Root})
	if !slices.Equal(again, want) || !slices.Equal(ids, ids2) {
		t.Fatalf("after reopening: sizes %v ids %q, want %v %q", again, ids2, want, ids)
	}
	// Compaction keeps them.
	s2 := &Store{Root: s.Root}
	st := s2.acquire(dir)
	if err := st.lock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.writeSnapshot(); err != nil {
		t.Fatal(err)
	}
	st.unlock()
	s2.release(st)
	compacted, ids3 := sizesOf(&Store{Root: s.Root})
	if !slices.Equal(compacted, want) || !slices.Equal(ids, ids3) {
		t.Fatalf("after compaction: sizes %v ids %q, want %v %q", compacted, ids3, want, ids)
	}
}
