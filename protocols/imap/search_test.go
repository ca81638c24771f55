package imap

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/internal/testdovecot"
	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// searchTestFolder appends n generated messages (see genMessage) to a new
// store's INBOX through the store and selects it.
func searchTestFolder(t testing.TB, n int) *store.Folder {
	t.Helper()
	ctx := context.Background()
	st := &store.Store{Root: t.TempDir(), Hostname: "search.test"}
	mb, err := st.OpenMailbox(ctx, store.Account{Address: "search@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		var flags []string
		if i%3 == 0 {
			flags = append(flags, `\Seen`)
		}
		if i%10 == 0 {
			flags = append(flags, `$Work`)
		}
		_, err := mb.Append(ctx, "INBOX", strings.NewReader(genMessage(i)), store.AppendOptions{Flags: flags, InternalDate: base.Add(time.Duration(i) * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
	}
	f, err := mb.Select(ctx, "INBOX", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// genMessage is message i of a generated folder: 200 senders, subjects
// that repeat with "Re:" every so often, threads of ten (each message
// refers to the one before in its group), dates in shuffled order.
func genMessage(i int) string {
	group := i / 10
	var b strings.Builder
	fmt.Fprintf(&b, "From: Sender %d <sender%d@example.net>\r\n", i%200, i%200)
	fmt.Fprintf(&b, "To: user%d@example.org\r\n", i%50)
	subject := fmt.Sprintf("Topic %d", group%1000)
	if i%10 != 0 {
		subject = "Re: " + subject
	}
	fmt.Fprintf(&b, "Subject: %s\r\n", subject)
	when := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration((i*7919)%100000) * time.Minute)
	fmt.Fprintf(&b, "Date: %s\r\n", when.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <m%d@example.net>\r\n", i)
	if i%10 != 0 {
		fmt.Fprintf(&b, "In-Reply-To: <m%d@example.net>\r\nReferences: <m%d@example.net> <m%d@example.net>\r\n", i-1, group*10, i-1)
	}
	fmt.Fprintf(&b, "\r\nBody of message %d.\r\n", i)
	return b.String()
}

// fillSortFolder writes n messages made by gen straight into a Maildir's
// cur/ (no fsync), as a big folder another program left, and selects it.
func fillSortFolder(tb testing.TB, n int, gen func(int) string) *store.Folder {
	tb.Helper()
	ctx := context.Background()
	st := &store.Store{Root: tb.TempDir(), Hostname: "bench"}
	mb, err := st.OpenMailbox(ctx, store.Account{Address: "big@example.org"})
	if err != nil {
		tb.Fatal(err)
	}
	f, err := mb.Select(ctx, "INBOX", false)
	if err != nil {
		tb.Fatal(err)
	}
	f.Close()
	cur := filepath.Join(mb.Dir(), "cur")
	base := time.Now().Add(-time.Hour).Unix()
	for i := 0; i < n; i++ {
		body := gen(i)
		flags := ""
		if i%3 == 0 {
			flags = "S"
		}
		name := fmt.Sprintf("%d.M%dP1Q%d.bench,S=%d:2,%s", base+int64(i/1000), i%1000, i, len(body), flags)
		if err := os.WriteFile(filepath.Join(cur, name), []byte(body), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	if f, err = mb.Select(ctx, "INBOX", false); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	if f.Len() != n {
		tb.Fatalf("folder has %d messages, want %d", f.Len(), n)
	}
	return f
}

func allIndexes(f *store.Folder) []int {
	idx := make([]int, f.Len())
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// TestSearchIndexOnlyOpensNothing replaces every message file with a FIFO,
// which an open would wait on forever: criteria the index answers, and
// SORT by ARRIVAL and SIZE, must finish anyway.
func TestSearchIndexOnlyOpensNothing(t *testing.T) {
	f := searchTestFolder(t, 30)
	var fifos []string
	for _, sub := range []string{"cur", "new"} {
		entries, _ := os.ReadDir(filepath.Join(f.Dir(), sub))
		for _, e := range entries {
			p := filepath.Join(f.Dir(), sub, e.Name())
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			fifos = append(fifos, p)
		}
	}
	if len(fifos) != 30 {
		t.Fatalf("%d message files", len(fifos))
	}
	last := f.Messages()[29]
	criteria := []goimap.SearchCriteria{
		{Flag: []goimap.Flag{goimap.FlagSeen}},
		{NotFlag: []goimap.Flag{goimap.FlagSeen, "$Work"}},
		{Flag: []goimap.Flag{wire.FlagRecent}},
		{UID: []goimap.UIDSet{{{Start: 3, Stop: 0}}}, Larger: 10},
		{SeqNum: []goimap.SeqSet{{{Start: 2, Stop: 9}}}, Smaller: 100000},
		{Since: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Before: time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)},
		{ModSeq: &goimap.SearchCriteriaModSeq{ModSeq: last.ModSeq}},
		{Not: []goimap.SearchCriteria{{Or: [][2]goimap.SearchCriteria{{{Flag: []goimap.Flag{goimap.FlagSeen}}, {Larger: 1 << 30}}}}}},
	}
	done := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for i := range criteria {
			idx, err := searchFolder(ctx, f, "", &criteria[i], nil)
			if err != nil {
				done <- err
				return
			}
			for _, keys := range [][]wire.SortCriterion{{{Key: wire.SortArrival}}, {{Key: wire.SortSize, Reverse: true}}} {
				if _, err := (*sortCache)(nil).sortFolder(ctx, f, idx, keys); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		// Release the open that hangs, so the goroutine ends.
		for _, p := range fifos {
			if w, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				w.Close()
			}
		}
		t.Fatal("an index-only search opened a message file")
	}
}

// TestSearchSemantics checks what the oracle test cannot: results on a
// generated folder for keys whose answer is known by construction.
func TestSearchSemantics(t *testing.T) {
	f := searchTestFolder(t, 40)
	ctx := context.Background()
	res := goimap.UIDSet{}
	res.AddNum(5, 7)
	var seen, work []int
	for i := 0; i < 40; i++ {
		if i%3 == 0 {
			seen = append(seen, i)
		}
		if i%10 == 0 {
			work = append(work, i)
		}
	}
	for _, tc := range []struct {
		name    string
		charset string
		c       goimap.SearchCriteria
		want    []int
		err     bool
	}{
		{name: "seen", c: goimap.SearchCriteria{Flag: []goimap.Flag{goimap.FlagSeen}}, want: seen},
		{name: "keyword any case", c: goimap.SearchCriteria{Flag: []goimap.Flag{"$WORK"}}, want: work},
		{name: "unknown keyword", c: goimap.SearchCriteria{Flag: []goimap.Flag{"$nope"}}, want: []int{}},
		{name: "not unknown keyword", c: goimap.SearchCriteria{NotFlag: []goimap.Flag{"$nope"}, SeqNum: []goimap.SeqSet{{{Start: 1, Stop: 3}}}}, want: []int{0, 1, 2}},
		{name: "all recent", c: goimap.SearchCriteria{Flag: []goimap.Flag{wire.FlagRecent}, SeqNum: []goimap.SeqSet{{{Start: 39, Stop: 0}}}}, want: []int{38, 39}},
		{name: "recent and old", c: goimap.SearchCriteria{Flag: []goimap.Flag{wire.FlagRecent}, NotFlag: []goimap.Flag{wire.FlagRecent}}, want: []int{}},
		{name: "searchres", c: goimap.SearchCriteria{UID: []goimap.UIDSet{goimap.SearchRes()}}, want: []int{4, 6}},
		{name: "uid star", c: goimap.SearchCriteria{UID: []goimap.UIDSet{{{Start: 1000, Stop: 0}}}}, want: []int{39}},
		{name: "seq beyond", c: goimap.SearchCriteria{SeqNum: []goimap.SeqSet{{{Start: 39, Stop: 1000}}}}, want: []int{38, 39}},
		{name: "from decoded", c: goimap.SearchCriteria{Header: []goimap.SearchCriteriaHeaderField{{Key: "FROM", Value: "SENDER7@"}}}, want: []int{7}},
		{name: "header exists", c: goimap.SearchCriteria{Header: []goimap.SearchCriteriaHeaderField{{Key: "in-reply-to"}}, SeqNum: []goimap.SeqSet{{{Start: 10, Stop: 12}}}}, want: []int{9, 11}},
		{name: "body", c: goimap.SearchCriteria{Body: []string{"MESSAGE 12."}}, want: []int{12}},
		{name: "text in header", c: goimap.SearchCriteria{Text: []string{"<m13@"}}, want: []int{13, 14}},
		{name: "latin1 charset", charset: "ISO-8859-1", c: goimap.SearchCriteria{Body: []string{"message 3\xb7"}}, want: []int{}},
		{name: "bad charset", charset: "X-NOSUCH", c: goimap.SearchCriteria{Body: []string{"x"}}, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := searchFolder(ctx, f, tc.charset, &tc.c, res)
			if tc.err {
				if ie, ok := err.(*goimap.Error); !ok || ie.Code != "BADCHARSET (US-ASCII UTF-8)" {
					t.Fatalf("err = %v, want BADCHARSET", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSortCache: answers are the same cold, warm and without a cache;
// the cache stays within its bound and drops the least recently used
// folder first; sessions share it safely.
func TestSortCache(t *testing.T) {
	ctx := context.Background()
	a := searchTestFolder(t, 60)
	b := searchTestFolder(t, 60)
	keys := []wire.SortCriterion{{Key: wire.SortSubject}, {Key: wire.SortDate, Reverse: true}}
	want, err := (*sortCache)(nil).sortFolder(ctx, a, allIndexes(a), keys)
	if err != nil {
		t.Fatal(err)
	}
	wantThreads, err := (*sortCache)(nil).threadFolder(ctx, a, allIndexes(a), "REFERENCES", true)
	if err != nil {
		t.Fatal(err)
	}
	// Room for about one folder.
	c := newSortCache(60*(sortEntryOverhead+300) + 1000)
	for round := 0; round < 2; round++ {
		got, err := c.sortFolder(ctx, a, allIndexes(a), keys)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: cached sort differs:\n%v\n%v", round, got, want)
		}
		threads, err := c.threadFolder(ctx, a, allIndexes(a), "REFERENCES", true)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(threads) != fmt.Sprint(wantThreads) {
			t.Fatalf("round %d: cached threads differ", round)
		}
	}
	if n := len(c.folders[sortFolderKey{a.Dir(), a.UIDValidity()}].uids); n != 60 {
		t.Fatalf("folder a has %d cached messages, want 60", n)
	}
	if _, err := c.sortFolder(ctx, b, allIndexes(b), keys); err != nil {
		t.Fatal(err)
	}
	if c.used > c.maxBytes {
		t.Fatalf("cache holds %d octets, bound %d", c.used, c.maxBytes)
	}
	if _, ok := c.folders[sortFolderKey{a.Dir(), a.UIDValidity()}]; ok {
		t.Error("folder a was not dropped for b")
	}
	// Concurrent sessions (run with -race).
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(f *store.Folder) {
			defer wg.Done()
			if _, err := c.threadFolder(ctx, f, allIndexes(f), "ORDEREDSUBJECT", false); err != nil {
				t.Error(err)
			}
		}([]*store.Folder{a, b}[i%2])
	}
	wg.Wait()
	if c.used > c.maxBytes {
		t.Fatalf("cache holds %d octets, bound %d", c.used, c.maxBytes)
	}
}

// TestSearchHostile: huge and deep criteria cost time linear in their
// size per message and never fail for their shape.
func TestSearchHostile(t *testing.T) {
	f := searchTestFolder(t, 50)
	ctx := context.Background()
	// 10,000 ORs in one list, as the parser accepts them.
	var line strings.Builder
	line.WriteString("t SORT (DATE) UTF-8 (")
	for i := 0; i < 10000; i++ {
		if i > 0 {
			line.WriteByte(' ')
		}
		if i%2 == 0 {
			fmt.Fprintf(&line, "OR UID %d SUBJECT nomatch%d", 100000+i, i)
		} else {
			fmt.Fprintf(&line, "OR UID 1:* SUBJECT nomatch%d", i)
		}
	}
	line.WriteString(") ALL")
	// Over the default line and token limits: the session refuses this
	// much, but the evaluation must not depend on it.
	r := wire.NewReader(bufio.NewReader(strings.NewReader(line.String()+"\r\n")), wire.Limits{Line: 1 << 20, Tokens: 1 << 20, Command: 1 << 22}, nil)
	cmd, err := r.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	s := cmd.Args.(*wire.Sort)
	// The even ORs hold for no message, so all of them for none; the odd
	// ones (UID 1:*) for every message, at the index's cost.
	idx, err := searchFolder(ctx, f, s.Charset, &s.Criteria, nil)
	if err != nil || len(idx) != 0 {
		t.Fatalf("10k ORs: %v, %v", idx, err)
	}
	var odd goimap.SearchCriteria
	for i, or := range s.Criteria.Or {
		if i%2 == 1 {
			odd.Or = append(odd.Or, or)
		}
	}
	if idx, err = searchFolder(ctx, f, s.Charset, &odd, nil); err != nil || len(idx) != 50 {
		t.Fatalf("5k true ORs: %d, %v", len(idx), err)
	}
	if idx, err = (*sortCache)(nil).sortFolder(ctx, f, idx, s.Keys); err != nil || len(idx) != 50 {
		t.Fatalf("SORT of 5k ORs: %d, %v", len(idx), err)
	}
	// A chain of 100,000 NOTs and one of 10,000 nested ORs, built
	// directly (the parser stops at 32 levels).
	deep := goimap.SearchCriteria{Flag: []goimap.Flag{goimap.FlagSeen}}
	for i := 0; i < 100000; i++ {
		deep = goimap.SearchCriteria{Not: []goimap.SearchCriteria{deep}}
	}
	idx, err = searchFolder(ctx, f, "", &deep, nil)
	if err != nil || len(idx) != 17 { // 100,000 NOTs are none: \Seen, 17 of 50
		t.Fatalf("deep NOT: %d, %v", len(idx), err)
	}
	ors := goimap.SearchCriteria{UID: []goimap.UIDSet{goimap.UIDSetNum(1)}}
	for i := 0; i < 10000; i++ {
		ors = goimap.SearchCriteria{Or: [][2]goimap.SearchCriteria{{{Body: []string{"no such text"}}, ors}}}
	}
	idx, err = searchFolder(ctx, f, "", &ors, nil)
	if err != nil || !slices.Equal(idx, []int{0}) {
		t.Fatalf("deep OR: %v, %v", idx, err)
	}
	// A UID set of 50,000 ranges is a binary search per message.
	var uids goimap.UIDSet
	for i := 0; i < 50000; i++ {
		uids.AddRange(goimap.UID(2*i+1), goimap.UID(2*i+1))
	}
	c := goimap.SearchCriteria{UID: []goimap.UIDSet{uids}}
	if idx, err = searchFolder(ctx, f, "", &c, nil); err != nil || len(idx) != 25 {
		t.Fatalf("50k ranges: %d, %v", len(idx), err)
	}
	// A cancelled context stops a search.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	big := fillSortFolder(t, 3000, genMessage)
	if _, err := searchFolder(cctx, big, "", &goimap.SearchCriteria{Body: []string{"x"}}, nil); err == nil {
		t.Error("a cancelled search succeeded")
	}
	runtime.GC()
}

// hostileThreads makes messages whose References make one long chain (the
// first half) or loops padded with junk identifiers (the rest).
func hostileThreads(n, junk int) func(int) string {
	return func(i int) string {
		var refs string
		switch {
		case i < n/2:
			if i > 0 {
				refs = fmt.Sprintf("References: <c%d@x>\r\n", i-1)
			}
		default:
			refs = fmt.Sprintf("References: <c%d@x> %s<c%d@x>\r\n", i+1, strings.Repeat("<junk@x> ", junk), i-1)
		}
		return fmt.Sprintf("Message-ID: <c%d@x>\r\n%sSubject: s\r\n\r\nb\r\n", i, refs)
	}
}

// TestThreadHostile threads messages whose References make one long
// chain and others that all claim the same parent and each other: the
// tree holds every message once.
func TestThreadHostile(t *testing.T) {
	ctx := context.Background()
	const n = 2000
	f := fillSortFolder(t, n, hostileThreads(n, 2000)) // 18 KB: over the cache's cut
	c := newSortCache(0)
	for _, alg := range []goimap.ThreadAlgorithm{"REFERENCES", "ORDEREDSUBJECT"} {
		threads, err := c.threadFolder(ctx, f, allIndexes(f), alg, false)
		if err != nil {
			t.Fatal(err)
		}
		seen := make([]bool, n+1)
		var walk func([]wire.ThreadNode)
		walk = func(ts []wire.ThreadNode) {
			for _, th := range ts {
				for _, num := range th.Chain {
					if seen[num] {
						t.Fatalf("%s: message %d twice", alg, num)
					}
					seen[num] = true
				}
				walk(th.SubThreads)
			}
		}
		walk(threads)
		for i := 1; i <= n; i++ {
			if !seen[i] {
				t.Fatalf("%s: message %d missing", alg, i)
			}
		}
	}
}

// The benchmarks run on a folder of 100,000 generated messages written
// straight into its Maildir (about 30 s to build, then in the page
// cache). "cold" starts each SORT or THREAD with an empty sortCache, so
// every header is read from its file; "warm" reuses one.

func BenchmarkSearchIndexOnly100k(b *testing.B) {
	f := fillSortFolder(b, 100000, genMessage)
	ctx := context.Background()
	last := f.Messages()[f.Len()-1]
	for _, bc := range []struct {
		name string
		c    goimap.SearchCriteria
	}{
		{"UNSEEN", goimap.SearchCriteria{NotFlag: []goimap.Flag{goimap.FlagSeen}}},
		{"ALL", goimap.SearchCriteria{}},
		{"OR_SEEN_LARGER", goimap.SearchCriteria{Or: [][2]goimap.SearchCriteria{{{Flag: []goimap.Flag{goimap.FlagSeen}}, {Larger: 400}}}}},
		{"UID_1:*_NOT_DELETED", goimap.SearchCriteria{UID: []goimap.UIDSet{{{Start: 1, Stop: 0}}}, NotFlag: []goimap.Flag{goimap.FlagDeleted}}},
		{"MODSEQ", goimap.SearchCriteria{ModSeq: &goimap.SearchCriteriaModSeq{ModSeq: last.ModSeq}}},
		{"SINCE_RECENT", goimap.SearchCriteria{Since: time.Now().Add(-48 * time.Hour), Flag: []goimap.Flag{wire.FlagRecent}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := searchFolder(ctx, f, "", &bc.c, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSortDate100k(b *testing.B) {
	f := fillSortFolder(b, 100000, genMessage)
	benchCached(b, func(c *sortCache) error {
		_, err := c.sortFolder(context.Background(), f, allIndexes(f), []wire.SortCriterion{{Key: wire.SortDate}})
		return err
	})
}

// BenchmarkThreadHostile100k threads 100,000 messages of which 50,000
// form one reply chain and 50,000 carry 2 KB References that loop.
func BenchmarkThreadHostile100k(b *testing.B) {
	f := fillSortFolder(b, 100000, hostileThreads(100000, 200))
	benchCached(b, func(c *sortCache) error {
		_, err := c.threadFolder(context.Background(), f, allIndexes(f), "REFERENCES", false)
		return err
	})
}

func BenchmarkThreadReferences100k(b *testing.B) {
	f := fillSortFolder(b, 100000, genMessage)
	benchCached(b, func(c *sortCache) error {
		_, err := c.threadFolder(context.Background(), f, allIndexes(f), "REFERENCES", true)
		return err
	})
}

// benchCached times run with an empty cache each time (cold) and with
// one filled beforehand (warm), and reports the heap the warm cache holds.
func benchCached(b *testing.B, run func(*sortCache) error) {
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := run(newSortCache(0)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := newSortCache(0)
		if err := run(c); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportAllocs()
		for b.Loop() {
			if err := run(c); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "cacheMiB")
		b.ReportMetric(float64(c.used)/(1<<20), "countedMiB")
	})
}

// BenchmarkSortThreadDovecot100k times the same SORT (DATE) and THREAD
// REFERENCES in a private Dovecot on the same 100,000 messages, for
// comparison: "first" is the first command after SELECT (Dovecot reads
// every header and fills its cache file), "again" the ones after.
func BenchmarkSortThreadDovecot100k(b *testing.B) {
	srv := testdovecot.Start(b)
	cur := filepath.Join(srv.Maildir, "cur")
	fi, err := os.Stat(cur)
	if err != nil {
		b.Fatal(err)
	}
	sys := fi.Sys().(*syscall.Stat_t)
	base := time.Now().Add(-time.Hour).Unix()
	for i := 0; i < 100000; i++ {
		body := genMessage(i)
		name := filepath.Join(cur, fmt.Sprintf("%d.M%dP1Q%d.bench,S=%d:2,", base+int64(i/1000), i%1000, i, len(body)))
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			b.Fatal(err)
		}
		if err := os.Chown(name, int(sys.Uid), int(sys.Gid)); err != nil {
			b.Fatal(err)
		}
	}
	c := srv.Login(b)
	start := time.Now()
	if _, err := c.Run("SELECT INBOX"); err != nil {
		b.Fatal(err)
	}
	b.Logf("dovecot: first SELECT of 100,000 messages %v", time.Since(start))
	for _, bc := range []struct{ name, cmd string }{
		{"SortDate", "SORT (DATE) UTF-8 ALL"},
		{"ThreadReferences", "UID THREAD REFERENCES UTF-8 ALL"},
	} {
		cmd := bc.cmd
		start := time.Now()
		if _, err := c.Run(cmd); err != nil {
			b.Fatal(err)
		}
		b.Logf("dovecot: first %s %v", cmd, time.Since(start))
		b.Run(bc.name+"/again", func(b *testing.B) {
			for b.Loop() {
				if _, err := c.Run(cmd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSortCacheFolder: entries added in batches below, between and above
// the cached UIDs are all found, whatever order the finds come in.
func TestSortCacheFolder(t *testing.T) {
	var cf sortCacheFolder
	ent := map[uint32]*sortFields{}
	for _, batch := range [][]uint32{{10, 20, 30}, {40, 50}, {5, 25, 60}, {1, 2, 3, 35, 36, 100}} {
		ents := make([]*sortFields, len(batch))
		for i, u := range batch {
			ents[i] = &sortFields{subject: fmt.Sprint(u)}
			ent[u] = ents[i]
		}
		cf.insert(batch, ents)
		if !slices.IsSorted(cf.uids) || len(cf.uids) != len(ent) {
			t.Fatalf("after %v: uids %v", batch, cf.uids)
		}
	}
	for _, asks := range [][]uint32{
		{1, 2, 3, 4, 5, 6, 10, 20, 25, 30, 35, 36, 37, 40, 50, 60, 99, 100, 101},
		{100, 1, 50, 2, 36, 35},
		{0, 4, 7, 1000},
	} {
		p := 0
		for _, u := range asks {
			if got := cf.find(u, &p); got != ent[u] {
				t.Errorf("find(%d) in %v: got %v, want %v", u, asks, got, ent[u])
			}
		}
	}
}
