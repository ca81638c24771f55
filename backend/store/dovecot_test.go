package store

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// copyTree copies a fixture maildir tree, adds the cur/ new/ tmp/ that git
// cannot store empty, and gives every file an old mtime so that a changed
// mtime would show.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	old := time.Unix(1700001000, 0)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			if rel == "." || strings.HasPrefix(d.Name(), ".") {
				return makeMaildir(target)
			}
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, data, 0o600); err != nil {
			return err
		}
		return os.Chtimes(target, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}

type fileState struct {
	mtime time.Time
	data  string
}

// userFiles records every file of a tree that is not ours (vmaild.*).
func userFiles(t *testing.T, root string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), "vmaild.") {
			return err
		}
		fi, _ := d.Info()
		data, _ := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		out[rel] = fileState{fi.ModTime(), string(data)}
		return nil
	})
	return out
}

func TestDovecotTree(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	dir := filepath.Join(s.Root, "example.org", "bob", "Maildir")
	copyTree(t, "testdata/dovecot/Maildir", dir)
	before := userFiles(t, dir)

	mb, err := s.OpenMailbox(ctx, Account{Address: "bob@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := mb.Select(ctx, "INBOX", true)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.UIDValidity() != 1699999999 {
		t.Errorf("UIDVALIDITY %d, want dovecot-uidlist's 1699999999", f.UIDValidity())
	}
	if got := uidsOf(f); !reflect.DeepEqual(got, []uint32{3, 5, 7, 11, 12}) {
		t.Fatalf("UIDs %v, want the uidlist's 3 5 7 11 and 12 for the unlisted message", got)
	}
	if f.UIDNext() != 13 {
		t.Errorf("UIDNEXT %d", f.UIDNext())
	}
	// Clients that used Dovecot's CONDSTORE keep its UIDVALIDITY with
	// its modseqs (small counters): ours start above them, so their next
	// CHANGEDSINCE gets every message rather than none.
	if h := f.HighestModSeq(); h < 1<<50 {
		t.Errorf("HIGHESTMODSEQ %d: not above a migrated client's", h)
	}
	for _, m := range f.Messages() {
		if m.ModSeq != f.HighestModSeq() {
			t.Errorf("uid %d modseq %d, want the start %d", m.UID, m.ModSeq, f.HighestModSeq())
		}
	}
	wantFlags := map[uint32][]string{
		3:  {`\Answered`, `\Seen`},
		5:  {`\Seen`, "$Label1"},
		7:  nil,
		11: {`\Draft`, `\Flagged`, `\Deleted`},
		12: nil,
	}
	for _, m := range f.Messages() {
		if got := f.FlagNames(m.Flags); !reflect.DeepEqual(got, wantFlags[m.UID]) {
			t.Errorf("uid %d flags %v, want %v", m.UID, got, wantFlags[m.UID])
		}
		r, err := f.Open(ctx, m.UID)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(r)
		r.Close()
		if int64(len(data)) != m.Size {
			t.Errorf("uid %d: index size %d, file %d", m.UID, m.Size, len(data))
		}
		if !bytes.Contains(data, []byte("Hello Bob")) {
			t.Errorf("uid %d: content %q", m.UID, data)
		}
	}
	if d := f.Messages()[0].InternalDate; !d.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("internal date %v", d)
	}
	if id, _ := f.UniqueID(ctx, 3); id != "1700000000.M1P2.host,S=209,W=220" {
		t.Errorf("unique id %q", id)
	}

	sent, err := mb.Status(ctx, "Sent")
	if err != nil {
		t.Fatal(err)
	}
	if sent.UIDValidity != 1699990000 || sent.Messages != 1 || sent.UIDNext != 2 {
		t.Errorf("Sent %+v", sent)
	}
	arch, err := mb.Status(ctx, "Archive/2024")
	if err != nil {
		t.Fatal(err)
	}
	if arch.Messages != 2 || arch.Unseen != 0 {
		t.Errorf("Archive/2024 %+v", arch)
	}
	list, err := mb.ListFolders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]FolderInfo{}
	for _, fi := range list {
		got[fi.Name] = fi
	}
	for name, want := range map[string]struct {
		sub  bool
		attr string
	}{
		"INBOX": {true, `\HasNoChildren`}, "Sent": {true, `\Sent`}, "Archive": {false, `\Noselect`},
		"Archive/2024": {true, `\HasNoChildren`}, "Entwürfe": {true, `\HasNoChildren`},
		"Trash": {false, `\Trash`}, "Drafts": {true, `\Drafts`},
	} {
		fi, ok := got[name]
		if !ok || fi.Subscribed != want.sub || !contains(fi.Attrs, want.attr) {
			t.Errorf("folder %q: %+v (present %v), want subscribed=%v with %s", name, fi, ok, want.sub, want.attr)
		}
	}

	// Opening, indexing, listing and reading changed no user file. Only
	// subscriptions changed: the auto-created Drafts and Junk were added.
	after := userFiles(t, dir)
	if subs := after["subscriptions"].data; !strings.HasPrefix(subs, before["subscriptions"].data) || !strings.Contains(subs, "\nDrafts\n") {
		t.Errorf("subscriptions now %q", subs)
	}
	delete(before, "subscriptions")
	for p, b := range before {
		a, ok := after[p]
		if !ok {
			t.Errorf("%s was renamed or removed", p)
			continue
		}
		if !a.mtime.Equal(b.mtime) || a.data != b.data {
			t.Errorf("%s was modified", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok && !strings.HasPrefix(p, ".Drafts/") && !strings.HasPrefix(p, ".Junk/") && p != "subscriptions" {
			t.Errorf("unexpected new file %s", p)
		}
	}

	// A second process (a fresh Store) reads our index, not the uidlist.
	s2 := &Store{Root: s.Root}
	mb2, _ := s2.OpenMailbox(ctx, Account{Address: "bob@example.org"})
	f2, err := mb2.Select(ctx, "INBOX", false)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if !reflect.DeepEqual(uidsOf(f2), uidsOf(f)) || f2.UIDValidity() != f.UIDValidity() {
		t.Fatalf("second open %v/%d", uidsOf(f2), f2.UIDValidity())
	}
	// Changing flags of a message in new/ moves it to cur/ with info.
	if _, err := f2.SetFlags(ctx, []uint32{7}, FlagsAdd, []string{`\Seen`, "NonJunk"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cur", "1700000200.M3P2.host,S=212,W=223:2,Sb")); err != nil {
		t.Errorf("flag change: %v", err)
	}
	if kw, _ := os.ReadFile(filepath.Join(dir, "dovecot-keywords")); string(kw) != "0 $Label1\n1 NonJunk\n" {
		t.Errorf("dovecot-keywords rewritten: %q", kw)
	}
	u, err := f.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Flags) != 1 || u.Flags[0].UID != 7 || !reflect.DeepEqual(f.FlagNames(u.Flags[0].Flags), []string{`\Seen`, "NonJunk"}) {
		t.Errorf("poll after flag change %+v", u)
	}
}
