package pop3

import (
	"bufio"
	"io"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/protocols/gate"
)

// BenchmarkLogin measures full sessions per second against an instant
// backend: connect, greeting, USER, PASS (lock and snapshot), QUIT.
func BenchmarkLogin(b *testing.B) {
	be := newMemBackend()
	be.add("bob", "pw", msg1, msg2)
	addr := testServer(b, &Server{Backend: be, AllowInsecureAuth: true, Gate: &gate.Gate{Limits: gate.Config{MaxPerNetwork: -1, MaxUnauthenticated: -1}}}, false)
	for b.Loop() {
		c := dial(b, addr)
		c.login("bob", "pw")
		c.must("QUIT", "+OK")
		// Wait for the server to hang up, so the lock is free again.
		c.expectClosed()
		c.conn.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
}

// BenchmarkRetr measures RETR throughput of a 1 MiB message with 78-octet
// LF-only lines (the worst case: every line ending is rewritten) and
// a dot-stuffed line every 100 lines.
func BenchmarkRetr(b *testing.B) {
	var sb strings.Builder
	for i := 0; sb.Len() < 1<<20; i++ {
		if i%100 == 0 {
			sb.WriteString(".")
		}
		sb.WriteString(strings.Repeat("x", 77))
		sb.WriteString("\n")
	}
	body := sb.String()
	be := newMemBackend()
	be.add("bob", "pw", body)
	addr := testServer(b, &Server{Backend: be, AllowInsecureAuth: true}, false)
	c := dial(b, addr)
	c.login("bob", "pw")
	b.SetBytes(int64(len(reference(body))))
	for b.Loop() {
		c.must("RETR 1", "+OK")
		drain(b, c)
	}
}

// BenchmarkTransfer is the normaliser alone, without the network.
func BenchmarkTransfer(b *testing.B) {
	body := strings.Repeat(strings.Repeat("y", 77)+"\n", 1<<20/78)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := transfer(io.Discard, strings.NewReader(body), true, -1); err != nil {
			b.Fatal(err)
		}
	}
}

// drain reads a multi-line answer without keeping it, so the benchmark
// measures the server rather than the test client's copying.
func drain(b *testing.B, c *client) {
	for {
		l, err := c.tp.R.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			b.Fatal(err)
		}
		if len(l) == 3 && string(l) == ".\r\n" {
			return
		}
	}
}
