package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/userdb"
	sqldir "github.com/vmaild/vmaild/userdb/sql"
)

func TestParallelDeliveriesManyUsers(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	const users, per = 50, 8
	var wg sync.WaitGroup
	errs := make(chan error, users*per)
	for u := 0; u < users; u++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				_, err := s.Deliver(ctx, Recipient{Address: fmt.Sprintf("user%d@example.org", u)}, bytes.NewReader(msg(i)))
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for u := 0; u < users; u++ {
		st, err := mustOpen(t, s, fmt.Sprintf("user%d@example.org", u)).Status(ctx, "INBOX")
		if err != nil || st.Messages != per {
			t.Fatalf("user%d: %+v %v", u, st, err)
		}
	}
}

// One writer appends, flags and expunges while readers poll and read; every
// reader's view must stay ordered and end equal to the folder.
func TestWriterAndReaders(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mb := mustOpen(t, s, "rw@example.org")
	w := mustSelect(t, mb, "INBOX")
	const readers, appends = 4, 60
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, readers+1)
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := mb.Select(ctx, "INBOX", true)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			watch, _ := mb.Watch("INBOX")
			defer watch.Close()
			check := func() error {
				u, err := f.Poll(ctx)
				if err != nil {
					return err
				}
				var last uint32
				for _, m := range f.Messages() {
					if m.UID <= last {
						return fmt.Errorf("view out of order: %d after %d", m.UID, last)
					}
					last = m.UID
				}
				for _, m := range u.New {
					rd, err := f.Open(ctx, m.UID)
					if errors.Is(err, ErrNotFound) {
						continue // expunged since
					}
					if err != nil {
						return err
					}
					b, _ := io.ReadAll(rd)
					rd.Close()
					if !bytes.HasPrefix(b, []byte("From: ")) || int64(len(b)) != m.Size {
						return fmt.Errorf("uid %d: bad content %q", m.UID, b)
					}
				}
				return nil
			}
			for {
				select {
				case <-done:
					if err := check(); err != nil {
						errs <- err
						return
					}
					if fmt.Sprint(uidsOf(f)) != fmt.Sprint(uidsOf(w)) {
						errs <- fmt.Errorf("reader %v, writer %v", uidsOf(f), uidsOf(w))
					}
					return
				case <-watch.C():
				case <-time.After(5 * time.Millisecond):
				}
				if err := check(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 0; i < appends; i++ {
		if _, err := w.Append(ctx, bytes.NewReader(msg(i)), AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		if i%3 == 2 {
			uid := w.Messages()[w.Len()/2].UID
			if _, err := w.SetFlags(ctx, []uint32{uid}, FlagsAdd, []string{`\Deleted`}); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Expunge(ctx, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A watcher that never reads must not slow deliveries down, and finds the
// coalesced kinds when it finally looks.
func TestSlowWatcherNeverBlocks(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mb := mustOpen(t, s, "w@example.org")
	w, _ := mb.Watch("INBOX")
	defer w.Close()
	f := mustSelect(t, mb, "INBOX")
	for i := 0; i < 50; i++ {
		if _, err := s.Deliver(ctx, Recipient{Address: "w@example.org"}, bytes.NewReader(msg(i))); err != nil {
			t.Fatal(err)
		}
	}
	f.Poll(ctx)
	f.SetFlags(ctx, []uint32{1}, FlagsAdd, []string{`\Seen`})
	f.Delete(ctx, []uint32{2})
	if k := w.Take(); k != EventNew|EventFlags|EventExpunge {
		t.Fatalf("kinds %b", k)
	}
	if k := w.Take(); k != 0 {
		t.Fatalf("kinds not cleared: %b", k)
	}
}

// memQuota is an in-memory userdb.QuotaStore with the same atomicity the
// SQL one gives (one mutex = one transaction).
type memQuota struct {
	mu sync.Mutex
	u  map[string]userdb.Usage
}

func (q *memQuota) Usage(_ context.Context, a string) (userdb.Usage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.u[a], nil
}

func (q *memQuota) AddUsage(_ context.Context, a string, b, m int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	u := q.u[a]
	u.Bytes += b
	u.Messages += m
	q.u[a] = u
	return nil
}

func (q *memQuota) ReserveUsage(_ context.Context, a string, b, m int64, l userdb.Limit) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	u := q.u[a]
	if (l.Bytes > 0 && u.Bytes+b > l.Bytes) || (l.Messages > 0 && u.Messages+m > l.Messages) {
		return false, nil
	}
	u.Bytes += b
	u.Messages += m
	q.u[a] = u
	return true, nil
}

func (q *memQuota) SetUsage(_ context.Context, a string, u userdb.Usage) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.u[a] = u
	return nil
}

// Usage must equal what is on disk after any mix of concurrent deliveries,
// appends, copies, moves, expunges and refusals.
func TestQuotaExactUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	qs := &memQuota{u: map[string]userdb.Usage{}}
	const addr = "q@example.org"
	limit := userdb.Limit{Bytes: 40 * int64(len(msg(10))), Messages: 35}
	q := UserdbQuota{Store: qs, Address: addr, Limit: limit}
	mb, err := s.OpenMailbox(ctx, Account{Address: addr, Quota: q})
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.CreateFolder(ctx, "Keep"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var over sync.Map
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := mb.Select(ctx, "INBOX", false)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			for i := 0; i < 25; i++ {
				var err error
				switch (g + i) % 5 {
				case 0:
					_, err = s.Deliver(ctx, Recipient{Address: addr, Quota: q}, bytes.NewReader(msg(i)))
				case 1:
					_, err = mb.Append(ctx, "Keep", bytes.NewReader(msg(i)), AppendOptions{Size: int64(len(msg(i)))})
				case 2:
					f.Poll(ctx)
					if f.Len() > 0 {
						_, err = f.Copy(ctx, []uint32{f.Messages()[0].UID}, "Keep")
					}
				case 3:
					f.Poll(ctx)
					if f.Len() > 1 {
						_, _, err = f.Move(ctx, []uint32{f.Messages()[1].UID}, "Keep")
					}
				case 4:
					f.Poll(ctx)
					if n := f.Len(); n > 0 {
						_, err = f.Delete(ctx, []uint32{f.Messages()[n-1].UID})
					}
				}
				if errors.Is(err, ErrOverQuota) {
					over.Store(g, true)
					continue
				}
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	bytes, msgs, err := s.Recalc(ctx, addr, "")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := qs.Usage(ctx, addr)
	if u.Bytes != bytes || u.Messages != msgs {
		t.Fatalf("usage %+v, disk %d bytes %d messages", u, bytes, msgs)
	}
	if msgs > limit.Messages || bytes > limit.Bytes {
		t.Fatalf("over the limit: %d/%d", bytes, msgs)
	}
	if _, ok := over.Load(0); !ok {
		t.Logf("no refusal seen (usage %+v)", u)
	}
	// Deleting a folder credits what it held.
	if err := mb.DeleteFolder(ctx, "Keep"); err != nil {
		t.Fatal(err)
	}
	bytes, msgs, _ = s.Recalc(ctx, addr, "")
	u, _ = qs.Usage(ctx, addr)
	if u.Bytes != bytes || u.Messages != msgs {
		t.Fatalf("after delete: usage %+v, disk %d/%d", u, bytes, msgs)
	}
}

func TestOverQuotaLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	qs := &memQuota{u: map[string]userdb.Usage{}}
	q := UserdbQuota{Store: qs, Address: "f@example.org", Limit: userdb.Limit{Messages: 1}}
	if _, err := s.Deliver(ctx, Recipient{Address: "f@example.org", Quota: q}, bytes.NewReader(msg(1))); err != nil {
		t.Fatal(err)
	}
	_, err := s.Deliver(ctx, Recipient{Address: "f@example.org", Quota: q}, bytes.NewReader(msg(2)))
	if !errors.Is(err, ErrOverQuota) || Temporary(err) {
		t.Fatalf("second delivery: %v", err)
	}
	mb, _ := s.OpenMailbox(ctx, Account{Address: "f@example.org", Quota: q})
	if _, err := mb.Append(ctx, "INBOX", bytes.NewReader(msg(3)), AppendOptions{}); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("append: %v", err)
	}
	b, m, _ := s.Recalc(ctx, "f@example.org", "")
	if m != 1 || b != int64(len(msg(1))) {
		t.Fatalf("disk %d/%d", b, m)
	}
	for _, sub := range []string{"tmp", "new"} {
		ents, _ := readNames(mb.Dir() + "/" + sub)
		if sub == "tmp" && len(ents) != 0 || sub == "new" && len(ents) != 1 {
			t.Fatalf("%s: %v", sub, ents)
		}
	}
}

func readNames(dir string) ([]string, error) {
	f, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func TestDeliverManyAndFile(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	rcpts := []Recipient{{Address: "m1@example.org"}, {Address: "bad/x@example.org"}, {Address: "m2@example.org", Folder: "Junk"}}
	res := s.DeliverMany(ctx, rcpts, bytes.NewReader(msg(7)))
	if res[0].Err != nil || res[1].Err == nil || res[2].Err != nil {
		t.Fatalf("results %+v", res)
	}
	spool := t.TempDir() + "/spool"
	writeFile(t, spool, msg(8))
	res = s.DeliverFile(ctx, rcpts[:1], spool)
	if res[0].Err != nil || res[0].Size != int64(len(msg(8))) {
		t.Fatalf("file result %+v", res)
	}
	st, _ := mustOpen(t, s, "m1@example.org").Status(ctx, "INBOX")
	st2, _ := mustOpen(t, s, "m2@example.org").Status(ctx, "Junk")
	if st.Messages != 2 || st2.Messages != 1 {
		t.Fatalf("m1 %+v m2 %+v", st, st2)
	}
}

// TestDeliverGroups: variants of one message (own Delivered-To each) are
// stored together; each copy is its group's body, and each quota is
// charged its own copy's size, in one batch on a real SQL quota store and
// one by one on a store that cannot batch. A copy over quota is refused
// alone, and a recipient the store cannot serve fails alone.
func TestDeliverGroups(t *testing.T) {
	sqlq, err := sqldir.Open(context.Background(), sqldir.Config{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "q.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqlq.Close() })
	if _, err := sqlq.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		qs   userdb.QuotaStore
	}{
		{"batched", sqlq},
		{"one by one", &memQuota{u: map[string]userdb.Usage{}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := newTestStore(t)
			quota := func(a string, l userdb.Limit) Quota {
				return UserdbQuota{Store: tt.qs, Address: a, Limit: l}
			}
			body := func(a string) string { return "Delivered-To: " + a + "\r\n" + string(msg(1)) }
			var groups []Group
			for _, a := range []string{"g1@example.org", "g2@example.org", "g3@example.org"} {
				groups = append(groups, Group{Recipients: []Recipient{{Address: a, Quota: quota(a, userdb.Limit{Messages: 5})}}, Body: strings.NewReader(body(a))})
			}
			// g4 and g5 share a body (an alias); g5 is full, bad/x invalid.
			groups = append(groups, Group{Recipients: []Recipient{
				{Address: "g4@example.org", Quota: quota("g4@example.org", userdb.Limit{})},
				{Address: "g5@example.org", Quota: quota("g5@example.org", userdb.Limit{Bytes: 10})},
				{Address: "bad/x@example.org"},
			}, Body: strings.NewReader(body("team@example.org"))})
			res := s.DeliverGroups(ctx, groups)
			for gi, want := range [][]error{{nil}, {nil}, {nil}, {nil, ErrOverQuota, ErrInvalid}} {
				for i, w := range want {
					d := res[gi][i]
					if (w == nil) != (d.Err == nil) || (w != nil && !errors.Is(d.Err, w)) {
						t.Errorf("group %d recipient %d: %v, want %v", gi, i, d.Err, w)
					}
				}
			}
			for i, a := range []string{"g1@example.org", "g2@example.org", "g3@example.org", "g4@example.org"} {
				name := a
				if i == 3 {
					name = "team@example.org"
				}
				want := body(name)
				got, err := os.ReadFile(res[min(i, 3)][0].Path)
				if err != nil || string(got) != want {
					t.Errorf("%s: %q, %v; want its own variant", a, got, err)
				}
				u, err := tt.qs.Usage(ctx, a)
				if err != nil || u != (userdb.Usage{Bytes: int64(len(want)), Messages: 1}) {
					t.Errorf("%s: usage %+v, %v; want %d bytes, 1 message", a, u, err, len(want))
				}
			}
			if u, _ := tt.qs.Usage(ctx, "g5@example.org"); u != (userdb.Usage{}) {
				t.Errorf("the refused copy was charged: %+v", u)
			}
			if st, err := mustOpen(t, s, "g5@example.org").Status(ctx, "INBOX"); err == nil && st.Messages != 0 {
				t.Errorf("g5 has %d messages, want none", st.Messages)
			}
		})
	}
}

// TestDeliverOnce: a delivery with a key, retried with Once (after a crash
// or a partial failure), finds the copy already there and writes none,
// whether the reader has moved it to cur/ or not.
func TestDeliverOnce(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	first := []Recipient{{Address: "o1@example.org", Key: "q-1"}, {Address: "o2@example.org", Key: "q-1"}}
	for _, d := range s.DeliverMany(ctx, first, bytes.NewReader(msg(1))) {
		if d.Err != nil || !strings.Contains(d.Name, "Kq1.") {
			t.Fatalf("first delivery %+v", d)
		}
	}
	// o1's reader sees it (new/ → cur/); o3 never had it.
	if _, err := mustOpen(t, s, "o1@example.org").Status(ctx, "INBOX"); err != nil {
		t.Fatal(err)
	}
	retry := []Recipient{
		{Address: "o1@example.org", Key: "q-1", Once: true},
		{Address: "o2@example.org", Key: "q-1", Once: true},
		{Address: "o3@example.org", Key: "q-1", Once: true},
	}
	for i, d := range s.DeliverMany(ctx, retry, bytes.NewReader(msg(1))) {
		if d.Err != nil {
			t.Fatalf("retry %d: %v", i, d.Err)
		}
	}
	if d, err := s.Deliver(ctx, retry[1], bytes.NewReader(msg(1))); err != nil || !strings.Contains(d.Name, "Kq1") {
		t.Fatalf("single retry %+v %v", d, err)
	}
	for _, a := range []string{"o1@example.org", "o2@example.org", "o3@example.org"} {
		st, err := mustOpen(t, s, a).Status(ctx, "INBOX")
		if err != nil || st.Messages != 1 {
			t.Errorf("%s: %+v %v, want one message", a, st, err)
		}
	}
}
