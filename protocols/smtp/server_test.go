package smtp

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/delivery"
)

// Shutdown closes idle connections at once with 421, lets a transaction in
// flight finish with its reply, and refuses new connections.
func TestShutdownFinishesTransactions(t *testing.T) {
	e := startServer(t, RoleMTA, false)
	idle := dialRaw(t, e.addr)
	idle.must("EHLO idle.test", "250 ")
	busy := dialRaw(t, e.addr)
	busy.must("EHLO busy.test", "250 ")
	busy.must("MAIL FROM:<someone@remote.test>", "250 ")
	busy.must("RCPT TO:<alice@example.org>", "250 ")
	busy.must("DATA", "354")
	busy.send("Subject: in flight\r\n\r\nfirst half\r\n")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	idle.expect("421 4.4.2")
	if !idle.closed() {
		t.Fatal("idle connection kept open")
	}
	if c, err := net.Dial("tcp", e.addr); err == nil {
		c.Close()
		t.Fatal("new connection accepted during shutdown")
	}
	busy.send("second half\r\n.\r\n")
	busy.expect("250 2.0.0")
	busy.expect("421 4.4.2")
	if !busy.closed() {
		t.Fatal("connection kept open after its transaction")
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	got := e.agent.all()
	if len(got) != 1 || !strings.Contains(got[0].data, "first half\r\nsecond half\r\n") {
		t.Fatalf("deliveries %+v", got)
	}
}

// When Shutdown's context ends first, everything is closed.
func TestShutdownDeadline(t *testing.T) {
	e := startServer(t, RoleMTA, false)
	busy := dialRaw(t, e.addr)
	busy.must("EHLO busy.test", "250 ")
	busy.must("MAIL FROM:<someone@remote.test>", "250 ")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v", err)
	}
	if !busy.closed() {
		t.Fatal("connection open after forced shutdown")
	}
}

func TestMessageSizeLimit(t *testing.T) {
	e := startServer(t, RoleMTA, false, func(s *Server) { s.MaxMessageBytes = 10 << 10 })
	c := dialRaw(t, e.addr)
	c.must("EHLO client.test", "250 ")
	c.must("MAIL FROM:<someone@remote.test>", "250 ")
	c.must("RCPT TO:<alice@example.org>", "250 ")
	c.must("DATA", "354")
	c.send("Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("y", 78)+"\r\n", 200) + ".\r\n")
	c.expect("552 5.3.4")
	c.must("MAIL FROM:<someone@remote.test>", "250 ")
	c.must("RCPT TO:<alice@example.org>", "250 ")
	c.must("DATA", "354")
	c.send("Subject: small\r\n\r\nok\r\n.\r\n")
	c.expect("250 2.0.0")
	if got := e.agent.all(); len(got) != 1 || !strings.Contains(got[0].data, "Subject: small") {
		t.Fatalf("deliveries %+v", got)
	}
}

// A message above MemorySpoolBytes goes through a file in SpoolDir that
// never shows up there (it is unlinked at once) and arrives intact.
func TestLargeMessageSpoolsToFile(t *testing.T) {
	spoolDir := t.TempDir()
	var sawFile bool
	e := startServer(t, RoleMTA, false, func(s *Server) {
		s.MemorySpoolBytes = 4 << 10
		s.SpoolDir = spoolDir
	})
	e.agent.inspect = func(m delivery.Message) {
		if mm, ok := m.(*message); ok && mm.body.file != nil {
			sawFile = true
		}
		if ents, _ := os.ReadDir(spoolDir); len(ents) != 0 {
			t.Errorf("spool dir holds %d entries", len(ents))
		}
	}
	body := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 4096)
	c := dialRaw(t, e.addr)
	c.must("EHLO client.test", "250 ")
	c.must("MAIL FROM:<someone@remote.test>", "250 ")
	c.must("RCPT TO:<alice@example.org>", "250 ")
	c.must("DATA", "354")
	c.send("Subject: large\r\n\r\n" + body + ".\r\n")
	c.expect("250 2.0.0")
	got := e.agent.all()
	if len(got) != 1 || !strings.HasSuffix(got[0].data, "Subject: large\r\n\r\n"+body) {
		t.Fatalf("message damaged (%d deliveries)", len(got))
	}
	if !sawFile {
		t.Error("message was not spooled to a file")
	}
}

func TestServerNeedsDirectoryAndAgent(t *testing.T) {
	s := &Server{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := s.Serve(l); err == nil {
		t.Fatal("Serve without Directory and Agent succeeded")
	}
}
