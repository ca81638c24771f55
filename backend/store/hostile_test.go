package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// indexedMailbox delivers n messages and indexes them once, returning the
// Maildir and the UIDVALIDITY.
func indexedMailbox(t *testing.T, s *Store, n int) (string, uint32) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		if _, err := s.Deliver(ctx, Recipient{Address: "h@example.org"}, bytes.NewReader(msg(i))); err != nil {
			t.Fatal(err)
		}
	}
	mb := mustOpen(t, s, "h@example.org")
	f, err := mb.Select(ctx, "INBOX", false)
	if err != nil {
		t.Fatal(err)
	}
	// Flag a message so the log has more than the snapshot.
	if _, err := f.SetFlags(ctx, []uint32{1}, FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	v := f.UIDValidity()
	f.Close()
	return mb.Dir(), v
}

func TestCorruptIndex(t *testing.T) {
	tests := []struct {
		name      string
		mangle    func([]byte) []byte
		sameValid bool // torn tails keep UIDVALIDITY, damage gets a new one
	}{
		{"torn tail", func(b []byte) []byte { return append(b, "3af0c2d1 A 99 c 12"...) }, true},
		{"torn tail after bad line", func(b []byte) []byte { return append(b, "zzzzzzzz garbage\nabc"...) }, true},
		{"truncated mid record", func(b []byte) []byte { return b[:len(b)-7] }, true},
		{"garbage in the middle", func(b []byte) []byte {
			i := bytes.IndexByte(b, '\n')
			return append(append(append([]byte{}, b[:i+1]...), "deadbeef X 1\n"...), b[i+1:]...)
		}, false},
		{"flipped byte", func(b []byte) []byte {
			c := append([]byte{}, b...)
			c[len(c)/3] ^= 0x20
			return c
		}, false},
		{"empty", func([]byte) []byte { return nil }, false},
		{"binary", func([]byte) []byte { return bytes.Repeat([]byte{0, 0xff, '\n'}, 1000) }, false},
		{"no header", func(b []byte) []byte { return b[bytes.IndexByte(b, '\n')+1:] }, false},
		{"huge line", func(b []byte) []byte { return append(b, bytes.Repeat([]byte("x"), 1<<20)...) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := newTestStore(t)
			dir, validity := indexedMailbox(t, s, 5)
			p := filepath.Join(dir, indexName)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, tt.mangle(data), 0o600); err != nil {
				t.Fatal(err)
			}
			s2 := &Store{Root: s.Root}
			mb := mustOpen(t, s2, "h@example.org")
			f, err := mb.Select(ctx, "INBOX", false)
			if err != nil {
				t.Fatalf("select after damage: %v", err)
			}
			defer f.Close()
			if f.Len() != 5 {
				t.Fatalf("%d messages after repair", f.Len())
			}
			if (f.UIDValidity() == validity) != tt.sameValid {
				t.Errorf("UIDVALIDITY %d → %d, same wanted: %v", validity, f.UIDValidity(), tt.sameValid)
			}
			if !f.Messages()[0].Flags.Has(FlagSeen) {
				t.Errorf("flags lost in repair: %+v", f.Messages()[0])
			}
			// The repaired index works for the next writer and reader.
			if _, err := f.Append(ctx, bytes.NewReader(msg(9)), AppendOptions{}); err != nil {
				t.Fatal(err)
			}
			f3, err := (&Store{Root: s.Root}).OpenMailbox(ctx, Account{Address: "h@example.org"})
			if err != nil {
				t.Fatal(err)
			}
			st, err := f3.Status(ctx, "INBOX")
			if err != nil || st.Messages != 6 || st.UIDValidity != f.UIDValidity() {
				t.Fatalf("status after repair %+v %v", st, err)
			}
		})
	}
}

func TestOddFileNames(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mb := mustOpen(t, s, "o@example.org")
	dir := mb.Dir()
	put := func(sub, name, content string) {
		if err := os.WriteFile(filepath.Join(dir, sub, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	put("new", ".hidden", "x")                                         // maildir: skip dot files
	put("new", "line\nbreak", "x")                                     // cannot be indexed: skipped
	put("new", "noinfo", "no size, no time")                           // stat'ed
	put("cur", "1700000000.odd:2,ZZSq", "unknown letters")             // Z ignored, S, keyword q
	put("cur", "1700000001.empty:2,", "empty info")                    // no flags
	put("cur", "1700000002.colon:1,junk", "old info")                  // base before ':'
	put("cur", "1700000003.lies,S=99999:2,S", "size in the name lies") // index trusts S=, reader fstat
	put("cur", "with space:2,S", "spaces")                             // still one name
	put("cur", strings.Repeat("l", 250), "long")                       // long but legal
	os.Mkdir(filepath.Join(dir, "cur", "adir"), 0o700)                 // directories are not mail
	os.Symlink("/etc/passwd", filepath.Join(dir, "cur", "link:2,S"))   // nor symlinks
	f, err := mb.Select(ctx, "INBOX", false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Len() != 7 {
		t.Fatalf("%d messages, want 7: %+v", f.Len(), f.Messages())
	}
	for _, m := range f.Messages() {
		r, err := f.Open(ctx, m.UID)
		if err != nil {
			t.Fatalf("uid %d: %v", m.UID, err)
		}
		r.Close()
		if m.Size == 99999 && r.Size() != int64(len("size in the name lies")) {
			t.Errorf("reader size %d", r.Size())
		}
	}
	// Reopen from the index alone: the odd names survive the log format.
	f2, err := (&Store{Root: s.Root}).OpenMailbox(ctx, Account{Address: "o@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := f2.Status(ctx, "INBOX")
	if err != nil || st.Messages != 7 || st.UIDValidity != f.UIDValidity() {
		t.Fatalf("status %+v %v", st, err)
	}
	// Odd directories in the Maildir are not folders.
	for _, d := range []string{"..bad", ".bad&name", ".a..b", ".x\x01y"} {
		os.Mkdir(filepath.Join(dir, d), 0o700)
	}
	list, err := mb.ListFolders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, fi := range list {
		if strings.Contains(fi.Name, "bad") || strings.Contains(fi.Name, "\x01") || strings.Contains(fi.Name, "a/") {
			t.Errorf("listed %q", fi.Name)
		}
	}
}

func TestHostileNamesAndPaths(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mb := mustOpen(t, s, "n@example.org")
	for _, name := range []string{"../x", "a/../../b", "..", "a\x00b", "a/./b", strings.Repeat("ä", 120), "x*", "/", "."} {
		if err := mb.CreateFolder(ctx, name); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateFolder(%q) = %v", name, err)
		}
		if _, err := mb.Select(ctx, name, true); err == nil {
			t.Errorf("Select(%q) succeeded", name)
		}
	}
	if err := mb.RenameFolder(ctx, "Sent", "Sent/sub"); err == nil {
		t.Errorf("rename into itself succeeded")
	}
	for _, tt := range []struct{ addr, override string }{
		{"a/b@example.org", ""},
		{"x@example.org", "../../etc"},
		{"x@example.org", "maildir:"},
		{"x@example.org", "a\x00b"},
		{"nobody", ""},
	} {
		if _, err := s.MaildirPath(tt.addr, tt.override); !errors.Is(err, ErrInvalid) {
			t.Errorf("MaildirPath(%q, %q) = %v", tt.addr, tt.override, err)
		}
	}
	bad := &Store{Root: s.Root, PathTemplate: "%d/%x"}
	if _, err := bad.MaildirPath("x@example.org", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad template: %v", err)
	}
	p, err := s.MaildirPath("x@example.org", "maildir:/var/vmail/x/Maildir:LAYOUT=fs")
	if err != nil || p != "/var/vmail/x/Maildir" {
		t.Errorf("override %q %v", p, err)
	}
	if _, err := s.Deliver(ctx, Recipient{Address: "n@example.org", Folder: "Nope"}, strings.NewReader("x")); !errors.Is(err, ErrNotFound) {
		t.Errorf("deliver to missing folder: %v", err)
	}
	if _, err := s.Deliver(ctx, Recipient{Address: "n@example.org", Folder: "Junk"}, strings.NewReader("x")); err != nil {
		t.Errorf("deliver to special folder: %v", err)
	}
}

func TestCorruptUIDList(t *testing.T) {
	for _, tt := range []struct {
		name, list string
		validity   uint32
	}{
		{"garbage header", "hello world\n1 :a\n", 0},
		{"bad line", "3 V123 N5\nnot a line\n", 0},
		{"version 1", "1 4242 9\n2 1700000000.a\n", 4242},
		{"v3 with ext", "3 V77 N3 Gx\n2 W10 :1700000000.a\n", 77},
		{"empty", "", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := newTestStore(t)
			mb := mustOpen(t, s, "u@example.org")
			os.WriteFile(filepath.Join(mb.Dir(), "cur", "1700000000.a:2,S"), []byte("x"), 0o600)
			os.WriteFile(filepath.Join(mb.Dir(), uidlistName), []byte(tt.list), 0o600)
			f, err := mb.Select(ctx, "INBOX", true)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Len() != 1 {
				t.Fatalf("%d messages", f.Len())
			}
			if tt.validity != 0 && (f.UIDValidity() != tt.validity || f.Messages()[0].UID != 2) {
				t.Errorf("validity %d uid %d", f.UIDValidity(), f.Messages()[0].UID)
			}
		})
	}
}
