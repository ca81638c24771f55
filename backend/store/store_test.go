package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

func newTestStore(t testing.TB) *Store {
	t.Helper()
	return &Store{Root: t.TempDir(), Hostname: "test.example"}
}

func msg(i int) []byte {
	return []byte(fmt.Sprintf("From: a@example.org\r\nSubject: %d\r\n\r\nbody %d\r\n", i, i))
}

func mustOpen(t testing.TB, s *Store, addr string) *Mailbox {
	t.Helper()
	mb, err := s.OpenMailbox(context.Background(), Account{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

func mustSelect(t testing.TB, mb *Mailbox, name string) *Folder {
	t.Helper()
	f, err := mb.Select(context.Background(), name, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func uidsOf(f *Folder) []uint32 {
	var out []uint32
	for _, m := range f.Messages() {
		out = append(out, m.UID)
	}
	return out
}

func TestDeliverSelectRead(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	for i := 0; i < 3; i++ {
		d, err := s.Deliver(ctx, Recipient{Address: "Bob@Example.org"}, bytes.NewReader(msg(i)))
		if err != nil {
			t.Fatal(err)
		}
		vsize, _ := VirtualSize(bytes.NewReader(msg(i)))
		if !strings.HasSuffix(d.Name, fmt.Sprintf(",S=%d,W=%d", len(msg(i)), vsize)) || d.VirtualSize != vsize {
			t.Fatalf("name %q lacks S= and W=", d.Name)
		}
		if filepath.Dir(filepath.Dir(d.Path)) != filepath.Join(s.Root, "example.org", "bob", "Maildir") {
			t.Fatalf("delivered to %s", d.Path)
		}
	}
	mb := mustOpen(t, s, "bob@example.org")
	f := mustSelect(t, mb, "inbox")
	if got := uidsOf(f); !reflect.DeepEqual(got, []uint32{1, 2, 3}) {
		t.Fatalf("uids %v", got)
	}
	for i, m := range f.Messages() {
		r, err := f.Open(ctx, m.UID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		if !bytes.Equal(b, msg(i)) || r.Size() != int64(len(b)) || m.Size != int64(len(b)) {
			t.Fatalf("message %d: %q size %d/%d", i, b, r.Size(), m.Size)
		}
	}
	// A delivery after SELECT shows up in Poll.
	if _, err := s.Deliver(ctx, Recipient{Address: "bob@example.org"}, bytes.NewReader(msg(3))); err != nil {
		t.Fatal(err)
	}
	u, err := f.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(u.New) != 1 || u.New[0].UID != 4 || u.NumMessages != 4 {
		t.Fatalf("poll %+v", u)
	}
}

func TestFlagsExpungeCopyMove(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mb := mustOpen(t, s, "a@example.org")
	for i := 0; i < 5; i++ {
		if _, err := mb.Append(ctx, "INBOX", bytes.NewReader(msg(i)), AppendOptions{Flags: []string{`\Seen`}}); err != nil {
			t.Fatal(err)
		}
	}
	f := mustSelect(t, mb, "INBOX")
	other := mustSelect(t, mb, "INBOX")
	up, err := f.SetFlags(ctx, []uint32{2, 3}, FlagsAdd, []string{`\Deleted`, "$Label1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(up) != 2 || !up[0].Flags.Has(FlagDeleted|FlagSeen) {
		t.Fatalf("updates %+v", up)
	}
	if got := f.FlagNames(up[0].Flags); !reflect.DeepEqual(got, []string{`\Seen`, `\Deleted`, "$Label1"}) {
		t.Fatalf("names %v", got)
	}
	ou, err := other.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ou.Flags) != 2 || ou.Flags[0].Seq != 2 {
		t.Fatalf("other poll %+v", ou)
	}
	exp, err := f.Expunge(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(exp, []Expunged{{3, 3}, {2, 2}}) {
		t.Fatalf("expunged %+v", exp)
	}
	ou, _ = other.Poll(ctx)
	if !reflect.DeepEqual(ou.Expunged, []Expunged{{3, 3}, {2, 2}}) || ou.NumMessages != 3 {
		t.Fatalf("other poll %+v", ou)
	}
	if err := mb.CreateFolder(ctx, "Archive/2024"); err != nil {
		t.Fatal(err)
	}
	cr, err := f.Copy(ctx, []uint32{1, 4, 99}, "Archive/2024")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cr.Source, []uint32{1, 4}) || !reflect.DeepEqual(cr.Dest, []uint32{1, 2}) {
		t.Fatalf("copy %+v", cr)
	}
	mr, mexp, err := f.Move(ctx, []uint32{5}, "Archive/2024")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(mr.Dest, []uint32{3}) || !reflect.DeepEqual(mexp, []Expunged{{3, 5}}) {
		t.Fatalf("move %+v %+v", mr, mexp)
	}
	st, err := mb.Status(ctx, "Archive/2024")
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 3 || st.UIDNext != 4 || st.Unseen != 0 {
		t.Fatalf("status %+v", st)
	}
	if _, err := os.Stat(filepath.Join(mb.Dir(), ".Archive.2024", "cur")); err != nil {
		t.Fatal(err)
	}
	a := mustSelect(t, mb, "Archive/2024")
	for _, m := range a.Messages() {
		if !m.Flags.Has(FlagSeen) {
			t.Fatalf("copy lost flags: %+v", m)
		}
	}
}

func TestFolderNames(t *testing.T) {
	tests := []struct {
		name, dir string
		err       error
	}{
		{"INBOX", "", nil},
		{"inbox", "", nil},
		{"Archive/2024", ".Archive.2024", nil},
		{"Entwürfe", ".Entw&APw-rfe", nil},
		{"A&B", ".A&-B", nil},
		{"INBOX/sub", ".INBOX.sub", nil},
		{"../etc", "", ErrInvalid},
		{"a.b", "", ErrInvalid},
		{"a//b", "", ErrInvalid},
		{"a/", "", ErrInvalid},
		{"/a", "", ErrInvalid},
		{"a\x00b", "", ErrInvalid},
		{"a\nb", "", ErrInvalid},
		{"", "", ErrInvalid},
		{"*", "", ErrInvalid},
		{strings.Repeat("x", 300), "", ErrInvalid},
		{"bad\xffutf8", "", ErrInvalid},
	}
	for _, tt := range tests {
		dir, canon, err := folderDir(tt.name)
		if !errors.Is(err, tt.err) || (err == nil && dir != tt.dir) {
			t.Errorf("folderDir(%q) = %q, %v; want %q, %v", tt.name, dir, err, tt.dir, tt.err)
			continue
		}
		if err == nil && dir != "" {
			back, ok := folderName(dir)
			if !ok || back != canon {
				t.Errorf("folderName(%q) = %q, %v; want %q", dir, back, ok, canon)
			}
		}
	}
}

func TestListFoldersSpecialAndSubscriptions(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mb := mustOpen(t, s, "a@example.org")
	if err := mb.CreateFolder(ctx, "Work/Projects"); err != nil {
		t.Fatal(err)
	}
	if err := mb.CreateFolder(ctx, "Work"); !errors.Is(err, ErrExists) {
		t.Fatalf("create parent again: %v", err)
	}
	if err := mb.Subscribe(ctx, "Work/Projects"); err != nil {
		t.Fatal(err)
	}
	list, err := mb.ListFolders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]FolderInfo{}
	var names []string
	for _, fi := range list {
		got[fi.Name] = fi
		names = append(names, fi.Name)
	}
	want := []string{"INBOX", "Drafts", "Junk", "Sent", "Trash", "Work", "Work/Projects"}
	sort.Strings(want[1:])
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("names %v", names)
	}
	if got["Sent"].SpecialUse != `\Sent` || !got["Sent"].Subscribed || !got["Work/Projects"].Subscribed || got["Work"].Subscribed {
		t.Fatalf("list %+v", list)
	}
	if err := mb.RenameFolder(ctx, "Work", "Job"); err != nil {
		t.Fatal(err)
	}
	subs, _ := mb.Subscriptions(ctx)
	if !contains(subs, "Job/Projects") || contains(subs, "Work/Projects") {
		t.Fatalf("subs after rename %v", subs)
	}
	if _, err := mb.Status(ctx, "Job/Projects"); err != nil {
		t.Fatal(err)
	}
	if err := mb.DeleteFolder(ctx, "Job"); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.Status(ctx, "Job"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("status deleted: %v", err)
	}
	if err := mb.DeleteFolder(ctx, "INBOX"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("delete INBOX: %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(mb.Dir(), "subscriptions"))
	if !bytes.HasPrefix(data, []byte("V\t2\n\n")) || !bytes.Contains(data, []byte("Job\tProjects\n")) {
		t.Fatalf("subscriptions file %q", data)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRenameInbox(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mb := mustOpen(t, s, "a@example.org")
	for i := 0; i < 3; i++ {
		s.Deliver(ctx, Recipient{Address: "a@example.org"}, bytes.NewReader(msg(i)))
	}
	if err := mb.RenameFolder(ctx, "INBOX", "Old"); err != nil {
		t.Fatal(err)
	}
	in, _ := mb.Status(ctx, "INBOX")
	old, _ := mb.Status(ctx, "Old")
	if in.Messages != 0 || old.Messages != 3 {
		t.Fatalf("inbox %+v old %+v", in, old)
	}
}

func TestWatcher(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := newTestStore(t)
	mb := mustOpen(t, s, "a@example.org")
	w, err := mb.Watch("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := s.Deliver(ctx, Recipient{Address: "a@example.org"}, bytes.NewReader(msg(1))); err != nil {
		t.Fatal(err)
	}
	k, err := w.Wait(ctx)
	if err != nil || k&EventNew == 0 {
		t.Fatalf("event %v %v", k, err)
	}
}

func openDir(dir string) (*os.File, error) { return os.Open(dir) }

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDeliverFlags: a copy delivered with flags lands in cur/ with its
// maildir info, keywords take the folder's letters (an existing one is
// reused, a new one added to dovecot-keywords), and readers see them; a
// copy without flags still goes to new/.
func TestDeliverFlags(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mb := mustOpen(t, s, "bob@example.org")
	// An APPEND names $Label1 first, so it has letter a.
	if _, err := mb.Append(ctx, "INBOX", bytes.NewReader(msg(0)), AppendOptions{Flags: []string{"$Label1"}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		flags   []string
		dir     string
		suffix  string
		imapSet []string
	}{
		{nil, "new", ",S=", nil},
		{[]string{`\Seen`}, "cur", ":2,S", []string{`\Seen`}},
		{[]string{`\Flagged`, "$Junk", `\Recent`}, "cur", ":2,Fb", []string{`\Flagged`, "$Junk"}},
		{[]string{"$label1", `\Seen`}, "cur", ":2,Sa", []string{`\Seen`, "$Label1"}},
	}
	for i, tt := range tests {
		d, err := s.Deliver(ctx, Recipient{Address: "bob@example.org", Flags: tt.flags}, bytes.NewReader(msg(i+1)))
		if err != nil {
			t.Fatalf("%v: %v", tt.flags, err)
		}
		if filepath.Base(filepath.Dir(d.Path)) != tt.dir || !strings.Contains(d.Name, tt.suffix) {
			t.Errorf("%v: delivered as %s", tt.flags, d.Path)
		}
	}
	// DeliverMany: each recipient's own flags on the shared file.
	res := s.DeliverMany(ctx, []Recipient{
		{Address: "bob@example.org", Flags: []string{`\Answered`}},
		{Address: "carol@example.org"},
	}, bytes.NewReader(msg(9)))
	for _, d := range res {
		if d.Err != nil {
			t.Fatal(d.Err)
		}
	}
	if !strings.HasSuffix(res[0].Name, ":2,R") || filepath.Base(filepath.Dir(res[1].Path)) != "new" {
		t.Errorf("fan-out delivered as %s and %s", res[0].Path, res[1].Path)
	}
	if _, err := s.Deliver(ctx, Recipient{Address: "bob@example.org", Flags: []string{`\Bogus`}}, bytes.NewReader(msg(8))); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown system flag: %v, want ErrInvalid", err)
	}

	f := mustSelect(t, mb, "INBOX")
	var got [][]string
	for _, m := range f.Messages() {
		got = append(got, f.FlagNames(m.Flags))
	}
	want := [][]string{{"$Label1"}, nil}
	for _, tt := range tests[1:] {
		want = append(want, tt.imapSet)
	}
	want = append(want, []string{`\Answered`})
	if len(got) != len(want) {
		t.Fatalf("flags %q, want %q", got, want)
	}
	for i := range want {
		if strings.Join(got[i], " ") != strings.Join(want[i], " ") {
			t.Errorf("message %d: flags %q, want %q", i+1, got[i], want[i])
		}
	}
}
