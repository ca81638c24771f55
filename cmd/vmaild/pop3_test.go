package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/protocols/pop3"
	"github.com/vmaild/vmaild/userdb"
)

// pop3Users is a directory of accounts whose password is "pw", so that the
// POP3 tests and benchmarks measure the maildrop, not password hashing.
type pop3Users struct {
	userdb.Directory
}

func (pop3Users) Authenticate(_ context.Context, login, password string) (*userdb.Account, error) {
	if password != "pw" {
		return nil, userdb.ErrBadCredentials
	}
	return &userdb.Account{Address: login}, nil
}

// pop3Fixture serves the store at root over POP3 through the daemon's
// adapter and returns the address.
func pop3Fixture(t testing.TB, st *store.Store) string {
	t.Helper()
	srv := &pop3.Server{
		Backend:           &pop3Backend{users: pop3Users{}, store: st},
		Hostname:          "pop.example.org",
		AllowInsecureAuth: true,
		Gate:              &gate.Gate{Limits: gate.Config{MaxPerNetwork: -1, MaxUnauthenticated: -1}},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; !errors.Is(err, pop3.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// pop3Session logs in as user, runs each command (multi-line answers are
// read whole) and quits, waiting for the server to hang up so the
// maildrop's lock is free again. It returns the answers, multi-line ones
// as their content: each line, dot-stuffing undone, ended by CRLF.
func pop3Session(addr, user string, cmds ...string) ([]string, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	tp := textproto.NewConn(nc)
	ask := func(cmd string) (string, error) {
		if cmd != "" {
			if err := tp.PrintfLine("%s", cmd); err != nil {
				return "", err
			}
		}
		l, err := tp.ReadLine()
		if err == nil && !strings.HasPrefix(l, "+OK") {
			err = fmt.Errorf("%q: %s", cmd, l)
		}
		return l, err
	}
	for _, c := range []string{"", "USER " + user, "PASS pw"} {
		if _, err := ask(c); err != nil {
			return nil, err
		}
	}
	var out []string
	for _, c := range cmds {
		l, err := ask(c)
		if err != nil {
			return nil, err
		}
		if multiLine(c) {
			ls, err := tp.ReadDotLines()
			if err != nil {
				return nil, err
			}
			var sb strings.Builder
			for _, line := range ls {
				sb.WriteString(line + "\r\n")
			}
			l = sb.String()
		}
		out = append(out, l)
	}
	if _, err := ask("QUIT"); err != nil {
		return nil, err
	}
	if l, err := tp.ReadLine(); err == nil {
		return nil, fmt.Errorf("still open after QUIT: %q", l)
	}
	return out, nil
}

func multiLine(cmd string) bool {
	f := strings.Fields(cmd)
	switch {
	case len(f) == 1 && (f[0] == "LIST" || f[0] == "UIDL"):
		return true
	case len(f) > 1 && (f[0] == "RETR" || f[0] == "TOP"):
		return true
	}
	return false
}

// writeMaildrop puts n messages straight into the INBOX's new/ of address,
// as another MTA would drop them: LF line endings and names that have
// ",S=" but no ",W=", so their POP3 size is not known from the name.
func writeMaildrop(t testing.TB, st *store.Store, address string, n int) {
	t.Helper()
	dir, err := st.MaildirPath(address, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	body := strings.Repeat("All work and no play makes Jack a dull boy.\n", 40)
	for i := range n {
		msg := fmt.Sprintf("From: a@example.org\nTo: %s\nSubject: message %d\nMessage-ID: <%d@example.org>\n\n%s", address, i, i, body)
		name := fmt.Sprintf("%d.M%06dP1Q%d.mx.example.org,S=%d", 1700000000+i, i, i, len(msg))
		if err := os.WriteFile(filepath.Join(dir, "new", name), []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkPOP3Login measures POP3 logins per second on 2,000-message
// maildrops through the daemon's store adapter: 8 clients at once, each
// running USER, PASS, STAT, QUIT on its own account over and over (one
// session per maildrop at a time is the POP3 rule). Each maildrop is
// logged into once before the clock starts, so the figure is the steady
// state a mail client polling every few minutes sees.
func BenchmarkPOP3Login(b *testing.B) {
	const messages = 2000
	// 8 clients: RunParallel starts parallelism × GOMAXPROCS goroutines,
	// one account each.
	par := max(1, 8/runtime.GOMAXPROCS(0))
	clients := par * runtime.GOMAXPROCS(0)
	st := &store.Store{Root: b.TempDir(), Hostname: "pop.example.org"}
	users := make([]string, clients)
	for i := range users {
		users[i] = fmt.Sprintf("user%d@example.org", i)
		writeMaildrop(b, st, users[i], messages)
	}
	addr := pop3Fixture(b, st)
	for _, u := range users {
		out, err := pop3Session(addr, u, "STAT")
		if err != nil {
			b.Fatal(err)
		}
		if !strings.HasPrefix(out[0], fmt.Sprintf("+OK %d ", messages)) {
			b.Fatalf("STAT: %s", out[0])
		}
	}
	// Setup runs once; the sub-benchmark is what b.N scales.
	b.Run(fmt.Sprintf("clients=%d/messages=%d", clients, messages), func(b *testing.B) {
		var next atomic.Int32
		b.SetParallelism(par)
		b.RunParallel(func(pb *testing.PB) {
			user := users[int(next.Add(1)-1)%clients]
			for pb.Next() {
				if _, err := pop3Session(addr, user, "STAT"); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
	})
}

// TestPOP3SizesFromStore checks, through the daemon's adapter, that LIST
// announces exactly what RETR sends (before dot-stuffing) for hostile
// messages, whether the size comes from a W= the store wrote at delivery,
// a W= Dovecot wrote, or the index's record for a name without W=; and
// that UIDL does not change when a size gets recorded, nor in a new
// process reading that record back.
func TestPOP3SizesFromStore(t *testing.T) {
	hostile := []string{
		"",
		"Subject: bare LF\n\nbody\n",
		"Subject: bare CR\r\rstill header\r\n\r\nbo\rdy\r\n",
		"Subject: mixed\r\nX: y\n\r\na\nb\r\n",
		"Subject: no final newline\n\nlast",
		"Subject: final CR\n\nlast\r",
		"Subject: dots\n\n.\n..\n.x\r\n.",
		"Subject: header only\nFrom: a@example.org",
	}
	ctx := context.Background()
	root := t.TempDir()
	st := &store.Store{Root: root, Hostname: "pop.example.org"}
	const user = "bob@example.org"
	dir, err := st.MaildirPath(user, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(dir, sub), 0o700)
	}
	for i, m := range hostile {
		// As another MTA drops it: S= only.
		name := fmt.Sprintf("1700000%03d.M1P%d.mx,S=%d", i, i, len(m))
		if err := os.WriteFile(filepath.Join(dir, "new", name), []byte(m), 0o600); err != nil {
			t.Fatal(err)
		}
		// As Dovecot names it, in cur/ with flags.
		w, _ := store.VirtualSize(strings.NewReader(m))
		name = fmt.Sprintf("1700001%03d.M1P%d.dovecot,S=%d,W=%d:2,S", i, i, len(m), w)
		if err := os.WriteFile(filepath.Join(dir, "cur", name), []byte(m), 0o600); err != nil {
			t.Fatal(err)
		}
		// As we deliver it.
		if _, err := st.Deliver(ctx, store.Recipient{Address: user}, strings.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	n := 3 * len(hostile)
	cmds := []string{"UIDL", "LIST"}
	for i := 1; i <= n; i++ {
		cmds = append(cmds, fmt.Sprintf("RETR %d", i))
	}
	check := func(st *store.Store) (uidl string) {
		t.Helper()
		out, err := pop3Session(pop3Fixture(t, st), user, cmds...)
		if err != nil {
			t.Fatal(err)
		}
		list := strings.Split(strings.TrimSuffix(out[1], "\r\n"), "\r\n")
		if len(list) != n {
			t.Fatalf("LIST has %d messages, want %d", len(list), n)
		}
		for i, l := range list {
			var num, size int
			fmt.Sscanf(l, "%d %d", &num, &size)
			var want strings.Builder
			store.CopyCRLF(&want, strings.NewReader(hostile[i%len(hostile)]))
			if sent := out[2+i]; size != len(sent) || sent != want.String() {
				t.Errorf("message %d: LIST %d, RETR sent %q (%d octets), want %q", num, size, sent, len(sent), want.String())
			}
		}
		return out[0]
	}
	first := check(st)
	if again := check(st); again != first {
		t.Errorf("UIDL changed once sizes were recorded:\n%s\nthen\n%s", first, again)
	}
	if fresh := check(&store.Store{Root: root}); fresh != first {
		t.Errorf("UIDL changed in a new process:\n%s\nthen\n%s", first, fresh)
	}
}
