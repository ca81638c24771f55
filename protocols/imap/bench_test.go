package imap

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// fillFolder writes n messages straight into a Maildir's cur/, as another
// program would have left them; the store indexes them on first open.
func fillFolder(b *testing.B, maildir string, n int) {
	b.Helper()
	cur := filepath.Join(maildir, "cur")
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(maildir, d), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	body := []byte("From: bench@example.net\r\nSubject: bench\r\n\r\nbody\r\n")
	base := time.Now().Add(-time.Hour).Unix()
	for i := 0; i < n; i++ {
		flags := ""
		if i%3 == 0 {
			flags = "S"
		}
		name := fmt.Sprintf("%d.M%dP1Q%d.bench,S=%d:2,%s", base+int64(i/1000), i%1000, i, len(body), flags)
		if err := os.WriteFile(filepath.Join(cur, name), body, 0o600); err != nil {
			b.Fatal(err)
		}
	}
}

// rawCmd sends one command and reads up to its tagged response, returning
// the octets read.
func rawCmd(b *testing.B, c net.Conn, br *bufio.Reader, tag, cmd string) int {
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	if _, err := c.Write([]byte(tag + " " + cmd + "\r\n")); err != nil {
		b.Fatal(err)
	}
	n := 0
	for {
		l, err := br.ReadSlice('\n')
		n += len(l)
		for err == bufio.ErrBufferFull {
			// A long line (SEARCH results): skip its rest.
			var more []byte
			more, err = br.ReadSlice('\n')
			n += len(more)
			l = []byte("*")
		}
		if err != nil {
			b.Fatal(err)
		}
		if len(l) > len(tag) && string(l[:len(tag)+1]) == tag+" " {
			if !strings.HasPrefix(string(l[len(tag)+1:]), "OK") {
				b.Fatalf("%s: %q", cmd, l)
			}
			return n
		}
	}
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

// BenchmarkFolder100k measures SELECT and UID FETCH 1:* (UID FLAGS) on a
// folder of 100,000 messages (set IMAP_BENCH_MESSAGES to change the size).
func BenchmarkFolder100k(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("IMAP_BENCH_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	e := newEnv(b)
	maildir, err := e.store.MaildirPath(testUser, "")
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	fillFolder(b, maildir, n)
	b.Logf("fixture: %d files in %v", n, time.Since(start))

	c, br := dialRaw(b, e.addr)
	defer c.Close()
	rawCmd(b, c, br, "L", "LOGIN "+testUser+" "+testPass)
	start = time.Now()
	rawCmd(b, c, br, "S0", "SELECT INBOX")
	b.Logf("first SELECT (index built from %d files): %v", n, time.Since(start))

	b.Run("SELECT", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			rawCmd(b, c, br, "S", "SELECT INBOX")
		}
	})
	b.Run("UID FETCH 1:* (UID FLAGS)", func(b *testing.B) {
		rawCmd(b, c, br, "S", "SELECT INBOX")
		var bytes int
		for i := 0; i < b.N; i++ {
			bytes = rawCmd(b, c, br, "F", "UID FETCH 1:* (UID FLAGS)")
		}
		b.SetBytes(int64(bytes))
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("UID SEARCH UNSEEN", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			rawCmd(b, c, br, "Q", "UID SEARCH UNSEEN")
		}
	})
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
