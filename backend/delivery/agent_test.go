package delivery_test

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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/queue"
	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/internal/testsrv"
	"github.com/vmaild/vmaild/userdb"
	sqldir "github.com/vmaild/vmaild/userdb/sql"
)

type fixture struct {
	agent *delivery.LocalAgent
	db    *sqldir.DB
	store *store.Store
	queue *queue.Queue
	users *userdb.Users
	// queueDir is the queue's spool.
	queueDir string
}

// newFixture builds the MDA over the real parts: a SQLite directory, the
// Maildir store and the queue's spool (its workers are not started, so
// queued messages stay in the spool to be inspected).
func newFixture(t testing.TB, cfg delivery.Config) *fixture {
	t.Helper()
	return newFixtureOn(t, cfg, sqldir.Config{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "vmaild.db")})
}

func newFixtureOn(t testing.TB, cfg delivery.Config, sqlCfg sqldir.Config) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqldir.Open(ctx, sqlCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.AddDomain(ctx, userdb.Domain{Name: "example.com", Active: true}))
	for _, a := range []string{"alice", "bob", "carol"} {
		must(db.AddAccount(ctx, userdb.Account{Address: a + "@example.com", Active: true}, "{PLAIN}x"))
	}
	must(db.AddAccount(ctx, userdb.Account{Address: "tiny@example.com", Active: true, Quota: &userdb.Limit{Bytes: 1000}}, "{PLAIN}x"))
	must(db.AddAlias(ctx, "team@example.com", "alice@example.com"))
	must(db.AddAlias(ctx, "team@example.com", "bob@example.com"))
	must(db.AddAlias(ctx, "team@example.com", "friend@remote.test"))
	must(db.AddAlias(ctx, "both@example.com", "alice@example.com"))
	must(db.AddAlias(ctx, "both@example.com", "team@example.com"))
	must(db.AddAlias(ctx, "fwd@example.com", "tiny@example.com"))
	must(db.AddAlias(ctx, "fwd@example.com", "carol@example.com"))

	q, err := queue.New(queue.Config{Dir: filepath.Join(dir, "queue"), Hostname: "mx.example.com"})
	t.Cleanup(func() { q.Shutdown(context.Background()) })
	must(err)
	st := &store.Store{Root: filepath.Join(dir, "mail")}
	users := &userdb.Users{Accounts: db, Domains: db, Quotas: db, RecipientDelimiter: "+"}
	return &fixture{
		agent: &delivery.LocalAgent{Directory: users, Quotas: db, Store: st, Queue: q, Config: cfg},
		db:    db, store: st, queue: q, users: users, queueDir: filepath.Join(dir, "queue"),
	}
}

type msg struct{ *bytes.Reader }

func (m msg) Size() int64 { return m.Reader.Size() }

func newMsg(s string) delivery.Message { return msg{bytes.NewReader([]byte(s))} }

// rcpts are recipients not resolved at RCPT: Deliver resolves them.
func rcpts(addrs ...string) []delivery.Recipient {
	out := make([]delivery.Recipient, len(addrs))
	for i, a := range addrs {
		out[i] = delivery.Recipient{Address: a, ORCPT: a}
	}
	return out
}

var (
	delivered = delivery.Outcome{Kind: delivery.Delivered}
	queued    = delivery.Outcome{Kind: delivery.Queued}
	accepted  = delivery.Outcome{Kind: delivery.Accepted}
)

const body = "From: sender@remote.test\r\nTo: team@example.com\r\nSubject: hi\r\n\r\nHello \xc3\xa9t\xc3\xa9\r\n.dot line\r\n"

// inbox returns the contents of every message in new/ of an account.
func (f *fixture) inbox(t testing.TB, addr string) []string {
	t.Helper()
	p, err := f.store.MaildirPath(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(p, "new"))
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(p, "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	if tmp, _ := os.ReadDir(filepath.Join(p, "tmp")); len(tmp) > 0 {
		t.Errorf("%s: %d files left in tmp/", addr, len(tmp))
	}
	return out
}

// pending lists the recipients the queue has still to deliver.
func (f *fixture) pending(t testing.TB) []string {
	t.Helper()
	items, err := f.queue.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		for _, r := range it.Recipients {
			if r.State == queue.Pending {
				out = append(out, r.Addr)
			}
		}
	}
	return out
}

func TestDeliver(t *testing.T) {
	f := newFixture(t, delivery.Config{})
	ctx := context.Background()
	env := delivery.Envelope{From: "sender@remote.test", Recipients: rcpts(
		"alice@example.com", "team@example.com", "nobody@example.com", "both@example.com", "alice+news@example.com",
	)}
	got := f.agent.Deliver(ctx, env, newMsg(body))
	want := []delivery.Outcome{delivered, delivered, delivery.Perm(delivery.NoSuchUser), delivered, delivered}
	for i, s := range got {
		if s != want[i] {
			t.Errorf("%s: %v, want %v", env.Recipients[i].Address, s, want[i])
		}
	}
	// alice is reached four ways but gets one copy; bob one.
	alice := f.inbox(t, "alice@example.com")
	if len(alice) != 1 || len(f.inbox(t, "bob@example.com")) != 1 {
		t.Fatalf("alice has %d copies, bob %d", len(alice), len(f.inbox(t, "bob@example.com")))
	}
	wantCopy := "Return-Path: <sender@remote.test>\r\nDelivered-To: alice@example.com\r\n" + body
	if alice[0] != wantCopy {
		t.Errorf("stored copy:\n%q\nwant\n%q", alice[0], wantCopy)
	}
	u, err := f.db.Usage(ctx, "alice@example.com")
	if err != nil || u.Messages != 1 || u.Bytes != int64(len(wantCopy)) {
		t.Errorf("alice usage = %+v, %v; want 1 message of %d bytes", u, err, len(wantCopy))
	}
	// The remote destination is in the durable queue, once.
	items, err := f.queue.List(ctx)
	if err != nil || len(items) != 1 {
		t.Fatalf("queue: %v, %v", items, err)
	}
	if len(items[0].Recipients) != 1 || items[0].Recipients[0].Addr != "friend@remote.test" {
		t.Errorf("queued recipients: %+v", items[0].Recipients)
	}
}

func TestDeliverLoops(t *testing.T) {
	f := newFixture(t, delivery.Config{MaxHops: 10})
	ctx := context.Background()
	hops := strings.Repeat("Received: from a by b; Thu, 1 Jan 2026 00:00:00 +0000\r\n", 10)
	s := f.agent.Deliver(ctx, delivery.Envelope{Recipients: rcpts("alice@example.com")}, newMsg(hops+body))
	if s[0] != delivery.Perm(delivery.Loop) {
		t.Errorf("10 Received headers: %v", s[0])
	}
	s = f.agent.Deliver(ctx, delivery.Envelope{Recipients: rcpts("team@example.com", "carol@example.com")},
		newMsg("Delivered-To: alice@example.com\r\n"+body))
	// team reaches alice (a loop) and bob (fine): permanent loop failure
	// for one destination does not fail the recipient; carol is fine.
	if !s[0].OK() || !s[1].OK() {
		t.Errorf("Delivered-To loop: %v", s)
	}
	if n := len(f.inbox(t, "alice@example.com")); n != 0 {
		t.Errorf("alice got %d copies of a message already delivered to her", n)
	}
	s = f.agent.Deliver(ctx, delivery.Envelope{Recipients: rcpts("alice@example.com")},
		newMsg("Delivered-To: Alice@Example.com\r\n"+body))
	if s[0] != delivery.Perm(delivery.Loop) {
		t.Errorf("Delivered-To naming the recipient: %v", s[0])
	}
	// A header that never ends and an overlong line do not trip the scan.
	s = f.agent.Deliver(ctx, delivery.Envelope{Recipients: rcpts("bob@example.com")},
		newMsg("X-Long: "+strings.Repeat("x", 100000)+"\r\n"+body))
	if !s[0].OK() {
		t.Errorf("overlong header line: %v", s[0])
	}
}

func TestDeliverOverQuota(t *testing.T) {
	for _, temp := range []bool{false, true} {
		t.Run(fmt.Sprintf("temporary=%v", temp), func(t *testing.T) {
			f := newFixture(t, delivery.Config{OverQuotaTemporary: temp})
			ctx := context.Background()
			big := newMsg(body + strings.Repeat("x", 2000) + "\r\n")
			s := f.agent.Deliver(ctx, delivery.Envelope{Recipients: rcpts("tiny@example.com")}, big)
			want := delivery.Perm(delivery.OverQuota)
			if temp {
				want = delivery.Temp(delivery.MailboxFull)
			}
			if s[0] != want {
				t.Errorf("over quota: %v, want %v", s[0], want)
			}
			if n := len(f.inbox(t, "tiny@example.com")); n != 0 {
				t.Errorf("%d files written for a refused message", n)
			}
			if u, _ := f.db.Usage(ctx, "tiny@example.com"); u != (userdb.Usage{}) {
				t.Errorf("usage changed: %+v", u)
			}
			// An alias to a full and a roomy mailbox delivers to the roomy
			// one and queues the full one, to retry or bounce on its own.
			s = f.agent.Deliver(ctx, delivery.Envelope{Recipients: rcpts("fwd@example.com")}, big)
			if s[0] != queued || len(f.inbox(t, "carol@example.com")) != 1 {
				t.Errorf("alias to full + roomy: %v, carol has %d", s[0], len(f.inbox(t, "carol@example.com")))
			}
			if got := f.pending(t); len(got) != 1 || got[0] != "tiny@example.com" {
				t.Errorf("queued for retry: %v", got)
			}
			// Fill tiny completely: RCPT-time check says 452 4.2.2.
			if err := f.db.SetUsage(ctx, "tiny@example.com", userdb.Usage{Bytes: 1000, Messages: 1}); err != nil {
				t.Fatal(err)
			}
			if _, st := f.agent.Resolve(ctx, "tiny@example.com"); st != delivery.Temp(delivery.MailboxFull) {
				t.Errorf("full mailbox at RCPT: %v", st)
			}
			if _, st := f.agent.Resolve(ctx, "alice@example.com"); st != accepted {
				t.Errorf("roomy mailbox at RCPT: %v", st)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	f := newFixture(t, delivery.Config{})
	ctx := context.Background()
	bad := delivery.Perm(delivery.BadAddress)
	for rcpt, want := range map[string]delivery.Outcome{
		"alice@example.com":      accepted,
		"alice+tag@example.com":  accepted,
		"team@example.com":       accepted,
		"nobody@example.com":     delivery.Perm(delivery.NoSuchUser),
		"a%b@example.com":        bad,
		"\"a@b\"@example.com":    bad,
		"alice@example.com\x00":  bad,
		"alice@@example.com":     bad,
		"alice@[127.0.0.1]":      bad,
		"other.test!u@example.c": bad,
	} {
		if _, got := f.agent.Resolve(ctx, rcpt); got != want {
			t.Errorf("Resolve(%q) = %v, want %v", rcpt, got, want)
		}
	}
	// The directory going away is "try later", at RCPT and at delivery.
	f.agent.Directory = downDirectory{f.users}
	if _, got := f.agent.Resolve(ctx, "alice@example.com"); got != delivery.Temp(delivery.DirectoryDown) {
		t.Errorf("directory down at RCPT: %v", got)
	}
	if got := f.agent.Deliver(ctx, delivery.Envelope{Recipients: rcpts("alice@example.com")}, newMsg(body)); got[0] != delivery.Temp(delivery.DirectoryDown) {
		t.Errorf("directory down at DATA: %v", got[0])
	}
}

type downDirectory struct{ userdb.Directory }

func (downDirectory) Resolve(ctx context.Context, a string) ([]userdb.Destination, error) {
	return nil, userdb.Unavailable("test", errors.New("directory down"))
}

// TestConcurrentQuota: deliveries racing for one mailbox's last bytes, and
// deletions running beside them, leave usage exactly equal to what is on
// disk, over SQLite and over a real MariaDB.
func TestConcurrentQuota(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { checkConcurrentQuota(t, newFixture(t, delivery.Config{})) })
	t.Run("mariadb", func(t *testing.T) {
		m := testsrv.StartMariaDB(t)
		checkConcurrentQuota(t, newFixtureOn(t, delivery.Config{}, sqldir.Config{Driver: "mysql", DSN: m.CreateDatabase("vmaild_quota")}))
	})
}

func checkConcurrentQuota(t *testing.T, f *fixture) {
	ctx := context.Background()
	if err := f.db.SetAccountQuota(ctx, "carol@example.com", &userdb.Limit{Bytes: 20000}); err != nil {
		t.Fatal(err)
	}
	m := newMsg(body + strings.Repeat("y", 900) + "\r\n")
	var wg sync.WaitGroup
	var delivered atomic.Int64
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st := f.agent.Deliver(ctx, delivery.Envelope{Recipients: rcpts("carol@example.com")}, m); st[0].OK() {
				delivered.Add(1)
			}
		}()
	}
	// Deleters: each takes what it sees and removes half of it, as POP3
	// sessions and IMAP expunges would.
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				mb, err := f.store.OpenMailbox(ctx, store.Account{Address: "carol@example.com",
					Quota: store.UserdbQuota{Store: f.db, Address: "carol@example.com", Limit: userdb.Limit{Bytes: 20000}}})
				if err != nil {
					t.Error(err)
					return
				}
				fo, err := mb.Select(ctx, "INBOX", false)
				if err != nil {
					t.Error(err)
					return
				}
				var uids []uint32
				for k, msg := range fo.Messages() {
					if k%2 == 0 {
						uids = append(uids, msg.UID)
					}
				}
				if _, err := fo.Delete(ctx, uids); err != nil {
					t.Error(err)
				}
				fo.Close()
			}
		}()
	}
	wg.Wait()
	u, err := f.db.Usage(ctx, "carol@example.com")
	if err != nil {
		t.Fatal(err)
	}
	bytes, msgs, err := f.store.Recalc(ctx, "carol@example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	if u.Bytes != bytes || u.Messages != msgs || bytes > 20000 || delivered.Load() == 0 {
		t.Errorf("usage %+v, on disk %d bytes in %d messages (limit 20000, %d delivered)", u, bytes, msgs, delivered.Load())
	}
}

func BenchmarkDeliver10K(b *testing.B) {
	payload := body + strings.Repeat(strings.Repeat("z", 78)+"\r\n", 128)
	b.Run("one user", func(b *testing.B) {
		f := newFixture(b, delivery.Config{})
		m := newMsg(payload)
		env := delivery.Envelope{From: "s@remote.test", Recipients: rcpts("alice@example.com")}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if s := f.agent.Deliver(context.Background(), env, m); !s[0].OK() {
				b.Fatal(s[0])
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("1000 users parallel", func(b *testing.B) {
		f := newFixture(b, delivery.Config{})
		ctx := context.Background()
		for i := 0; i < 1000; i++ {
			if err := f.db.AddAccount(ctx, userdb.Account{Address: fmt.Sprintf("u%d@example.com", i), Active: true}, "{PLAIN}x"); err != nil {
				b.Fatal(err)
			}
		}
		c := userdb.NewCache(f.db, f.db, userdb.CacheConfig{})
		f.agent.Directory = &userdb.Users{Accounts: c.Accounts(), Domains: c.Domains(), Quotas: f.db}
		m := newMsg(payload)
		var n sync.Mutex
		next := 0
		b.ReportAllocs()
		b.ResetTimer()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n.Lock()
				i := next % 1000
				next++
				n.Unlock()
				env := delivery.Envelope{Recipients: rcpts(fmt.Sprintf("u%d@example.com", i))}
				if s := f.agent.Deliver(ctx, env, m); !s[0].OK() {
					b.Error(s[0])
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

// BenchmarkFanout is one 10 KB message to one mailbox, to an alias of ten
// mailboxes and to ten recipients of one transaction.
func BenchmarkFanout(b *testing.B) {
	payload := body + strings.Repeat(strings.Repeat("z", 78)+"\r\n", 128)
	ten := make([]string, 10)
	for i := range ten {
		ten[i] = fmt.Sprintf("f%d@example.com", i)
	}
	for _, tt := range []struct {
		name  string
		rcpts []string
		cfg   delivery.Config
	}{
		{"1 recipient", []string{"f0@example.com"}, delivery.Config{}},
		{"alias of 10", []string{"ten@example.com"}, delivery.Config{}},
		{"10 recipients", ten, delivery.Config{}},
		{"10 recipients, delivered_to none", ten, delivery.Config{DeliveredTo: "none"}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			f := newFixture(b, tt.cfg)
			ctx := context.Background()
			for _, a := range ten {
				if err := f.db.AddAccount(ctx, userdb.Account{Address: a, Active: true}, "{PLAIN}x"); err != nil {
					b.Fatal(err)
				}
				if err := f.db.AddAlias(ctx, "ten@example.com", a); err != nil {
					b.Fatal(err)
				}
			}
			m := newMsg(payload)
			env := delivery.Envelope{From: "s@remote.test", Recipients: rcpts(tt.rcpts...)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, s := range f.agent.Deliver(ctx, env, m) {
					if !s.OK() {
						b.Fatal(s)
					}
				}
			}
		})
	}
}

// TestOneDeadline: with the quota database frozen, a delivery to an alias of
// ten mailboxes gives up after the one delivery deadline, not after ten SQL
// timeouts, and nothing of it is written.
func TestOneDeadline(t *testing.T) {
	m := testsrv.StartMariaDB(t)
	f := newFixtureOn(t, delivery.Config{Timeout: 2 * time.Second},
		sqldir.Config{Driver: "mysql", DSN: m.CreateDatabase("vmaild_deadline"), Timeout: 3 * time.Second})
	ctx := context.Background()
	var members []string
	for i := 0; i < 10; i++ {
		a := fmt.Sprintf("d%d@example.com", i)
		members = append(members, a)
		if err := f.db.AddAccount(ctx, userdb.Account{Address: a, Active: true}, "{PLAIN}x"); err != nil {
			t.Fatal(err)
		}
		if err := f.db.AddAlias(ctx, "ten@example.com", a); err != nil {
			t.Fatal(err)
		}
	}
	rc, o := f.agent.Resolve(ctx, "ten@example.com") // at RCPT, before the freeze
	if o.Failed() || len(rc.Destinations) != 10 {
		t.Fatalf("resolve: %v %+v", o, rc)
	}
	m.Pause()
	defer m.Resume()
	start := time.Now()
	got := f.agent.Deliver(ctx, delivery.Envelope{From: "s@remote.test", Recipients: []delivery.Recipient{rc}, OneReply: true}, newMsg(body))
	took := time.Since(start)
	m.Resume()
	t.Logf("frozen database: %v after %v", got[0], took.Round(time.Millisecond))
	if got[0].Kind != delivery.Temporary {
		t.Errorf("outcome %v, want temporary", got[0])
	}
	// Ten SQL timeouts would be 30s; one deadline is 2s. The margin is for
	// a busy machine.
	if took > 15*time.Second {
		t.Errorf("delivery took %v with a 2s deadline", took)
	}
	for _, a := range members {
		if n := len(f.inbox(t, a)); n != 0 {
			t.Errorf("%s has %d copies of a message answered with a temporary failure", a, n)
		}
	}
}

// TestFilters: the plan stage. DetailFolders files user+tag@ into an
// existing folder "tag" (INBOX otherwise); a filter of the test's adds a
// header field, refuses, discards and tempfails per destination, and sees
// the envelope's facts.
func TestFilters(t *testing.T) {
	f := newFixture(t, delivery.Config{DetailFolders: true})
	ctx := context.Background()
	mb, err := f.store.OpenMailbox(ctx, store.Account{Address: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.CreateFolder(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	var seen []string
	f.agent.Filters = []delivery.Filter{delivery.FilterFunc(func(_ context.Context, m *delivery.Mail, d *delivery.Decision) error {
		seen = append(seen, m.Destination.Address+" "+m.Envelope.Helo+" "+m.Header.Get("Subject")+" "+m.Recipient.ORCPT)
		d.AddHeader = append(d.AddHeader, delivery.HeaderField{Name: "X-Filtered", Value: "yes"})
		switch m.Destination.Address {
		case "bob@example.com":
			d.Refuse = delivery.Perm(delivery.Rejected)
			d.Refuse.Text = "Bob does not want it"
		case "carol@example.com":
			d.Discard = true
		case "tiny@example.com":
			return errors.New("scanner down")
		}
		return nil
	})}
	for _, tt := range []struct {
		rcpt string
		want delivery.Outcome
	}{
		{"alice+news@example.com", delivered},
		{"alice+nofolder@example.com", delivered},
		{"bob@example.com", delivery.Outcome{Kind: delivery.Permanent, Cause: delivery.Rejected, Text: "Bob does not want it"}},
		{"carol@example.com", delivered},
		{"tiny@example.com", delivery.Outcome{Kind: delivery.Temporary, Cause: delivery.Rejected, Text: "filter failed, try again later"}},
	} {
		env := delivery.Envelope{From: "s@remote.test", Helo: "client.test", Recipients: []delivery.Recipient{{Address: tt.rcpt, ORCPT: "<" + tt.rcpt + ">"}}}
		if got := f.agent.Deliver(ctx, env, newMsg(body)); got[0] != tt.want {
			t.Errorf("%s: %v, want %v", tt.rcpt, got[0], tt.want)
		}
	}
	if n := len(f.inbox(t, "alice@example.com")); n != 1 {
		t.Errorf("alice's INBOX has %d messages, want 1 (the other is in news)", n)
	}
	p, _ := f.store.MaildirPath("alice@example.com", "")
	news, _ := os.ReadDir(filepath.Join(p, ".news", "new"))
	if len(news) != 1 {
		t.Errorf("news has %d messages, want 1", len(news))
	}
	if in := f.inbox(t, "alice@example.com"); len(in) == 1 && !strings.Contains(in[0], "\r\nX-Filtered: yes\r\nFrom: sender@remote.test") {
		t.Errorf("added header field missing: %q", in[0][:min(200, len(in[0]))])
	}
	for _, a := range []string{"bob@example.com", "carol@example.com", "tiny@example.com"} {
		if n := len(f.inbox(t, a)); n != 0 {
			t.Errorf("%s got %d copies", a, n)
		}
	}
	if len(seen) != 5 || seen[0] != "alice@example.com client.test hi <alice+news@example.com>" {
		t.Errorf("filters saw %q", seen)
	}
}

// TestDeliveredToNone: without Delivered-To every local copy of a message is
// one file, hard-linked into each mailbox and charged to each quota.
func TestDeliveredToNone(t *testing.T) {
	f := newFixture(t, delivery.Config{DeliveredTo: "none"})
	ctx := context.Background()
	got := f.agent.Deliver(ctx, delivery.Envelope{From: "s@remote.test", Recipients: rcpts("alice@example.com", "bob@example.com")}, newMsg(body))
	if got[0] != delivered || got[1] != delivered {
		t.Fatalf("outcomes %v", got)
	}
	var files []os.FileInfo
	for _, a := range []string{"alice@example.com", "bob@example.com"} {
		p, _ := f.store.MaildirPath(a, "")
		ents, _ := os.ReadDir(filepath.Join(p, "new"))
		if len(ents) != 1 {
			t.Fatalf("%s has %d messages", a, len(ents))
		}
		fi, err := os.Stat(filepath.Join(p, "new", ents[0].Name()))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, fi)
		if u, _ := f.db.Usage(ctx, a); u.Messages != 1 || u.Bytes != fi.Size() {
			t.Errorf("%s usage %+v, file %d bytes", a, u, fi.Size())
		}
	}
	if !os.SameFile(files[0], files[1]) {
		t.Error("the two copies are not one file")
	}
	if c := f.inbox(t, "bob@example.com"); strings.Contains(c[0], "Delivered-To") {
		t.Errorf("copy names a recipient: %q", c[0][:80])
	}
}

// diskFull is a store whose file system is full for some addresses.
type diskFull struct {
	delivery.Mailstore
	full map[string]bool
}

func (s diskFull) Deliver(ctx context.Context, rc store.Recipient, r io.Reader) (store.Delivery, error) {
	if s.full[rc.Address] {
		return store.Delivery{}, fmt.Errorf("write: %w: %w", store.ErrTemporary, syscall.ENOSPC)
	}
	return s.Mailstore.Deliver(ctx, rc, r)
}

func (s diskFull) DeliverGroups(ctx context.Context, groups []store.Group) [][]store.Delivery {
	return deliverEach(ctx, s.Deliver, groups)
}

// deliverEach stores every copy of groups through deliver, one at a time:
// a test store that fails some mailboxes implements DeliverGroups by it.
func deliverEach(ctx context.Context, deliver func(context.Context, store.Recipient, io.Reader) (store.Delivery, error), groups []store.Group) [][]store.Delivery {
	out := make([][]store.Delivery, len(groups))
	for gi, g := range groups {
		b, _ := io.ReadAll(g.Body)
		out[gi] = make([]store.Delivery, len(g.Recipients))
		for i, rc := range g.Recipients {
			out[gi][i], out[gi][i].Err = deliver(ctx, rc, bytes.NewReader(b))
		}
	}
	return out
}

// TestDiskFull: a full file system is a temporary failure of its own
// cause (452 4.3.1 at the front end); beside a success in one reply it is
// queued for retry, alone it reaches the client.
func TestDiskFull(t *testing.T) {
	f := newFixture(t, delivery.Config{})
	ctx := context.Background()
	f.agent.Store = diskFull{f.agent.Store, map[string]bool{"bob@example.com": true}}
	got := f.agent.Deliver(ctx, delivery.Envelope{Recipients: rcpts("bob@example.com")}, newMsg(body))
	if got[0] != delivery.Temp(delivery.DiskFull) {
		t.Errorf("bob alone: %v", got[0])
	}
	got = f.agent.Deliver(ctx, delivery.Envelope{From: "s@remote.test", OneReply: true, Recipients: rcpts("alice@example.com", "bob@example.com")}, newMsg(body))
	if got[0] != delivered || got[1] != queued {
		t.Errorf("alice + bob in one reply: %v", got)
	}
	if p := f.pending(t); len(p) != 1 || p[0] != "bob@example.com" {
		t.Errorf("queued for retry: %v", p)
	}
}

// TestFilterFlags: a filter's flags and keywords reach the stored copy
// (cur/, maildir info letters, keywords by name), per destination of one
// fan-out, also when the folder it names is missing and INBOX is used.
func TestFilterFlags(t *testing.T) {
	f := newFixture(t, delivery.Config{DetailFolders: true})
	ctx := context.Background()
	f.agent.Filters = append(f.agent.Filters, delivery.FilterFunc(func(_ context.Context, m *delivery.Mail, d *delivery.Decision) error {
		if m.Destination.Address == "alice@example.com" {
			d.Flags = []string{`\Flagged`, "$Junk"}
		}
		return nil
	}))
	env := delivery.Envelope{From: "s@remote.test", Recipients: rcpts("alice+nofolder@example.com", "bob@example.com")}
	if got := f.agent.Deliver(ctx, env, newMsg(body)); got[0] != delivered || got[1] != delivered {
		t.Fatalf("outcomes %v", got)
	}
	for _, tt := range []struct {
		addr string
		want string
	}{
		{"alice@example.com", `\Flagged $Junk`},
		{"bob@example.com", ""},
	} {
		mb, err := f.store.OpenMailbox(ctx, store.Account{Address: tt.addr})
		if err != nil {
			t.Fatal(err)
		}
		fo, err := mb.Select(ctx, "INBOX", true)
		if err != nil {
			t.Fatal(err)
		}
		msgs := fo.Messages()
		if len(msgs) != 1 {
			t.Fatalf("%s has %d messages", tt.addr, len(msgs))
		}
		if got := strings.Join(fo.FlagNames(msgs[0].Flags), " "); got != tt.want {
			t.Errorf("%s: flags %q, want %q", tt.addr, got, tt.want)
		}
		r, err := fo.Open(ctx, msgs[0].UID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		fo.Close()
		if !strings.HasSuffix(string(b), body) {
			t.Errorf("%s: copy reads %q", tt.addr, b)
		}
	}
}

// folderCount is the number of messages in new/ and cur/ of an account's
// folder ("" is INBOX).
func (f *fixture) folderCount(t testing.TB, addr, folder string) int {
	t.Helper()
	p, err := f.store.MaildirPath(addr, "")
	if err != nil {
		t.Fatal(err)
	}
	if folder != "" {
		p = filepath.Join(p, "."+folder)
	}
	n := 0
	for _, sub := range []string{"new", "cur"} {
		ents, _ := os.ReadDir(filepath.Join(p, sub))
		n += len(ents)
	}
	return n
}

// retryPending delivers every pending local recipient of the queue
// (example.com) through Redeliver, as the queue's local hook does, and
// marks nothing: the test looks at the mailboxes.
func (f *fixture) retryPending(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	items, err := f.queue.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		var addrs []delivery.Recipient
		for _, r := range it.Recipients {
			if r.State == queue.Pending && strings.HasSuffix(r.Addr, "@example.com") {
				addrs = append(addrs, delivery.Recipient{Address: r.Addr, Final: r.Final})
			}
		}
		if len(addrs) == 0 {
			continue
		}
		rd, err := f.queue.Message(ctx, it.ID)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rd)
		rd.Close()
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range f.agent.Redeliver(ctx, it.ID, it.From, addrs, b) {
			if o != delivered {
				t.Errorf("retry of %s: %v", addrs[i].Address, o)
			}
		}
	}
}

// TestRetryKeepsDetail: a destination reached through user+tag@ (directly
// or through an alias) that fails for a while is queued with its tag, so
// the retry files it into the tag's folder like the first attempt did.
func TestRetryKeepsDetail(t *testing.T) {
	for _, tt := range []struct {
		name   string
		rcpts  []string
		queued string
	}{
		{"direct", []string{"alice@example.com", "bob+news@example.com"}, "bob+news@example.com"},
		{"alias", []string{"team+news@example.com"}, "bob+news@example.com"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, delivery.Config{DetailFolders: true})
			ctx := context.Background()
			for _, a := range []string{"alice@example.com", "bob@example.com"} {
				mb, err := f.store.OpenMailbox(ctx, store.Account{Address: a})
				if err != nil {
					t.Fatal(err)
				}
				if err := mb.CreateFolder(ctx, "news"); err != nil {
					t.Fatal(err)
				}
			}
			full := diskFull{f.agent.Store, map[string]bool{"bob@example.com": true}}
			f.agent.Store = full
			env := delivery.Envelope{From: "s@remote.test", OneReply: true, Recipients: rcpts(tt.rcpts...)}
			for i, o := range f.agent.Deliver(ctx, env, newMsg(body)) {
				if !o.OK() {
					t.Fatalf("%s: %v", tt.rcpts[i], o)
				}
			}
			var local []string
			for _, p := range f.pending(t) {
				if strings.HasSuffix(p, "@example.com") {
					local = append(local, p)
				}
			}
			if len(local) != 1 || local[0] != tt.queued {
				t.Fatalf("queued for local retry: %v, want %s", local, tt.queued)
			}
			full.full["bob@example.com"] = false
			f.retryPending(t)
			if n := f.folderCount(t, "bob@example.com", "news"); n != 1 {
				t.Errorf("bob's news folder has %d messages, want 1", n)
			}
			if n := f.folderCount(t, "bob@example.com", ""); n != 0 {
				t.Errorf("bob's INBOX has %d messages, want 0", n)
			}
		})
	}
}
