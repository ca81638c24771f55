package imap

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/vmaild/vmaild/internal/testdovecot"
)

// fillFolder writes n messages straight into a Maildir's cur/, as another
// program would have left them; the server indexes them on first open.
// Every fifth message starts a thread the next four reply to, and the
// Date headers are shuffled against the arrival order, so SORT and THREAD
// have work to do. The files get the Maildir directory's owner (a private
// Dovecot run from root reads its mail as an unprivileged user).
func fillFolder(b *testing.B, maildir string, n int) {
	b.Helper()
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(maildir, d), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	fi, err := os.Stat(maildir)
	if err != nil {
		b.Fatal(err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	chown := st != nil && (int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid())
	cur := filepath.Join(maildir, "cur")
	base := time.Now().Add(-time.Hour).Unix()
	date := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var body bytes.Buffer
	for i := 0; i < n; i++ {
		body.Reset()
		root := i - i%5
		fmt.Fprintf(&body, "From: Sender %d <s%d@example.net>\r\nTo: alice@example.org\r\n", i%97, i%97)
		fmt.Fprintf(&body, "Date: %s\r\nMessage-ID: <%d@bench.example>\r\n", date.Add(time.Duration(i*7919%n)*time.Minute).Format(time.RFC1123Z), i)
		if i != root {
			fmt.Fprintf(&body, "In-Reply-To: <%d@bench.example>\r\nReferences: <%d@bench.example>\r\nSubject: Re: thread %d\r\n", i-1, root, root)
		} else {
			fmt.Fprintf(&body, "Subject: thread %d\r\n", root)
		}
		body.WriteString("\r\nbody\r\n")
		flags := ""
		if i%3 == 0 {
			flags = "S"
		}
		name := filepath.Join(cur, fmt.Sprintf("%d.M%dP1Q%d.bench,S=%d:2,%s", base+int64(i/1000), i%1000, i, body.Len(), flags))
		if err := os.WriteFile(name, body.Bytes(), 0o600); err != nil {
			b.Fatal(err)
		}
		if chown {
			if err := os.Chown(name, int(st.Uid), int(st.Gid)); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// exchange sends one command and reads up to its tagged response, handing
// each response line (the first 64 KiB of a longer one) to onLine when
// not nil. It returns the octets read and the tagged line.
func exchange(b *testing.B, c net.Conn, br *bufio.Reader, tag, cmd string, onLine func([]byte)) (int, string) {
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	if _, err := c.Write([]byte(tag + " " + cmd + "\r\n")); err != nil {
		b.Fatal(err)
	}
	n := 0
	for {
		l, err := br.ReadSlice('\n')
		n += len(l)
		if onLine != nil && err != bufio.ErrBufferFull {
			onLine(l)
		}
		for err == bufio.ErrBufferFull {
			// A long line (SEARCH, SORT, THREAD results): skip its rest.
			var more []byte
			more, err = br.ReadSlice('\n')
			n += len(more)
			l = []byte("*")
		}
		if err != nil {
			b.Fatalf("%s: %v", cmd, err)
		}
		if len(l) > len(tag) && string(l[:len(tag)+1]) == tag+" " {
			return n, strings.TrimRight(string(l[len(tag)+1:]), "\r\n")
		}
	}
}

// rawCmd is exchange for a command that must succeed.
func rawCmd(b *testing.B, c net.Conn, br *bufio.Reader, tag, cmd string) int {
	n, status := exchange(b, c, br, tag, cmd, nil)
	if !strings.HasPrefix(status, "OK") {
		b.Fatalf("%s: %s", cmd, status)
	}
	return n
}

func dialRaw(b *testing.B, addr string) (net.Conn, *bufio.Reader) {
	return dialRawSize(b, addr, 64<<10)
}

func dialRawSize(b *testing.B, addr string, size int) (net.Conn, *bufio.Reader) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReaderSize(c, size)
	if _, err := br.ReadString('\n'); err != nil {
		b.Fatal(err)
	}
	return c, br
}

// benchServer is one IMAP server under BenchmarkFolder100k, reached with
// raw commands so that both servers get the same octets.
type benchServer struct {
	name, addr, user, pass string
	maildir                string // its INBOX
	c                      net.Conn
	br                     *bufio.Reader
}

// login opens a new connection (closing the old one) and logs in.
func (s *benchServer) login(b *testing.B) {
	s.logout(b)
	s.c, s.br = dialRaw(b, s.addr)
	rawCmd(b, s.c, s.br, "L", fmt.Sprintf("LOGIN %q %q", s.user, s.pass))
}

// logout ends the session and waits for the server to close the
// connection, so that the server has let go of the folder.
func (s *benchServer) logout(b *testing.B) {
	if s.c == nil {
		return
	}
	exchange(b, s.c, s.br, "O", "LOGOUT", nil)
	s.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	io.Copy(io.Discard, s.br)
	s.c.Close()
	s.c = nil
}

// try runs a command that a server may refuse. A refusal is reported by
// skipping the benchmark (after a new login and SELECT, as the server may
// have dropped the connection): the figures stay comparable, the run goes
// on.
func (s *benchServer) try(b *testing.B, tag, cmd string) int {
	n, status := exchange(b, s.c, s.br, tag, cmd, nil)
	if !strings.HasPrefix(status, "OK") {
		s.login(b)
		rawCmd(b, s.c, s.br, "S", "SELECT INBOX")
		b.Skipf("%s answers %s %s", s.name, tag, status)
	}
	return n
}

// dropIndex removes the folder's index files, either server's, so that the
// next SELECT builds them from the message files again.
func (s *benchServer) dropIndex(b *testing.B) {
	ents, err := os.ReadDir(s.maildir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range ents {
		if n := e.Name(); n == "vmaild.index" || n == "dovecot-uidlist" || strings.HasPrefix(n, "dovecot.index") {
			if err := os.Remove(filepath.Join(s.maildir, n)); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkFolder100k runs the same raw commands on a folder of 100,000
// messages (IMAP_BENCH_MESSAGES changes the count) against vmaild and,
// with VMAILD_BENCH_DOVECOT=1, against a private Dovecot holding the same
// messages: sub-benchmarks are named server/command. SELECT-cold is a
// SELECT on a fresh login after the folder's index files were removed;
// the commands after it first run once untimed (logged: Dovecot builds
// its cache then). The CHANGEDSINCE fetch follows 10 STOREs; a server
// that refuses a command gets that benchmark skipped with its answer.
// IMAP_BENCH_SORTKEYS=1 adds SORT by other keys.
func BenchmarkFolder100k(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("IMAP_BENCH_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	var servers []*benchServer
	e := newEnv(b)
	maildir, err := e.store.MaildirPath(testUser, "")
	if err != nil {
		b.Fatal(err)
	}
	servers = append(servers, &benchServer{name: "vmaild", addr: e.addr, user: testUser, pass: testPass, maildir: maildir})
	if os.Getenv("VMAILD_BENCH_DOVECOT") == "1" {
		d := testdovecot.Start(b)
		servers = append(servers, &benchServer{name: "dovecot", addr: d.Addr, user: d.User, pass: d.Password, maildir: d.Maildir})
	}
	for _, s := range servers {
		start := time.Now()
		fillFolder(b, s.maildir, n)
		b.Logf("%s fixture: %d files in %v", s.name, n, time.Since(start))
	}
	for _, s := range servers {
		b.Run(s.name, func(b *testing.B) {
			defer s.logout(b)
			benchFolder(b, s, n)
		})
	}
}

func benchFolder(b *testing.B, s *benchServer, n int) {
	b.Run("SELECT-cold", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			s.logout(b)
			s.dropIndex(b)
			s.login(b)
			b.StartTimer()
			rawCmd(b, s.c, s.br, "S", "SELECT INBOX")
		}
	})
	if s.c == nil {
		s.login(b)
		rawCmd(b, s.c, s.br, "S", "SELECT INBOX")
	}
	b.Run("SELECT", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			rawCmd(b, s.c, s.br, "S", "SELECT INBOX")
		}
	})
	// repeat times cmd after one untimed run, reporting the octets of an
	// answer and messages/s when perMsg.
	repeat := func(name, cmd string, perMsg bool) {
		first := true
		b.Run(name, func(b *testing.B) {
			start := time.Now()
			octets := s.try(b, "F", cmd)
			if first {
				first = false
				b.Logf("%s first %s: %v, %d octets", s.name, cmd, time.Since(start).Round(time.Millisecond), octets)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				octets = s.try(b, "F", cmd)
			}
			b.SetBytes(int64(octets))
			if perMsg {
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			}
		})
	}
	repeat("UID FETCH 1:* (FLAGS)", "UID FETCH 1:* (FLAGS)", true)
	repeat("UID SEARCH UNSEEN", "UID SEARCH UNSEEN", false)

	// The modseq the changes start from: 1 (every message's) when the
	// server does not tell.
	modseq := uint64(1)
	_, status := exchange(b, s.c, s.br, "M", "STATUS INBOX (HIGHESTMODSEQ)", func(l []byte) {
		if _, v, ok := strings.Cut(string(l), "HIGHESTMODSEQ "); ok {
			fmt.Sscan(strings.TrimRight(v, ")\r\n"), &modseq)
		}
	})
	if !strings.HasPrefix(status, "OK") {
		b.Logf("%s: STATUS (HIGHESTMODSEQ): %s", s.name, status)
		s.login(b)
		rawCmd(b, s.c, s.br, "S", "SELECT INBOX")
	}
	for i := 0; i < 10; i++ {
		rawCmd(b, s.c, s.br, "W", fmt.Sprintf("STORE %d +FLAGS.SILENT (\\Flagged)", 1+i*(n/10)))
	}
	repeat("UID FETCH 1:* (FLAGS) (CHANGEDSINCE n)", fmt.Sprintf("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)", modseq), false)
	repeat("UID SORT (DATE) UTF-8 ALL", "UID SORT (DATE) UTF-8 ALL", false)
	if os.Getenv("IMAP_BENCH_SORTKEYS") == "1" {
		for _, k := range []string{"ARRIVAL", "SUBJECT", "FROM", "REVERSE DATE"} {
			repeat("UID SORT ("+k+") UTF-8 ALL", "UID SORT ("+k+") UTF-8 ALL", false)
		}
	}
	repeat("UID THREAD REFERENCES UTF-8 ALL", "UID THREAD REFERENCES UTF-8 ALL", false)
}

// BenchmarkLogin measures connect + LOGIN + LOGOUT against an in-memory
// directory: the server's own cost per login, without password hashing.
func BenchmarkLogin(b *testing.B) {
	e := newEnv(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, br := dialRaw(b, e.addr)
		rawCmd(b, c, br, "L", "LOGIN "+testUser+" "+testPass)
		rawCmd(b, c, br, "O", "LOGOUT")
		c.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
}

// BenchmarkIdleConnections opens 5,000 logged-in connections with INBOX
// selected and reports the server's memory per 1,000 of them (Go heap and
// stacks, measured after GC; the clients are bare sockets in the same
// process and cost little next to it). Set IMAP_BENCH_CONNS to change the
// count. Run with -benchtime=1x.
func BenchmarkIdleConnections(b *testing.B) {
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("IMAP_BENCH_CONNS")); err == nil && v > 0 {
		n = v
	}
	for i := 0; i < b.N; i++ {
		e := newEnv(b, func(s *Server) { s.Timeouts.Idle = time.Hour })
		e.deliver(b, "", "Subject: x\r\n\r\nx\r\n")
		before := memNow()
		conns := make([]net.Conn, 0, n)
		for j := 0; j < n; j++ {
			// A small reader, dropped after SELECT: the client side
			// keeps only its socket.
			c, br := dialRawSize(b, e.addr, 512)
			rawCmd(b, c, br, "L", "LOGIN "+testUser+" "+testPass)
			rawCmd(b, c, br, "S", "SELECT INBOX")
			conns = append(conns, c)
		}
		time.Sleep(100 * time.Millisecond)
		after := memNow()
		per := float64(after.heapStack-before.heapStack) / float64(n) * 1000 / 1024
		rss := float64(after.rss-before.rss) / float64(n) * 1000 / 1024
		b.ReportMetric(per, "KiB-heap+stack/1000conns")
		b.ReportMetric(rss, "KiB-RSS/1000conns")
		stack := float64(after.stack-before.stack) / float64(n) * 1000 / 1024
		b.Logf("%d idle connections: heap+stack %.0f KiB per 1000 (of which stacks %.0f), RSS %.0f KiB per 1000 (goroutines %d)", n, per, stack, rss, runtime.NumGoroutine())
		b.StopTimer()
		for _, c := range conns {
			c.Close()
		}
		b.StartTimer()
	}
}

type memFigures struct{ heapStack, stack, rss uint64 }

func memNow() memFigures {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	f := memFigures{heapStack: ms.HeapInuse + ms.StackInuse, stack: ms.StackInuse}
	if data, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				var kb uint64
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:")), "%d", &kb)
				f.rss = kb * 1024
			}
		}
	}
	return f
}

var _ = imapclient.Options{}
