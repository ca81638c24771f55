package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/queue"
	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

// queueCLI runs `vmaild queue ...` with the configuration of c. The queue
// command is built on an app holding the loaded configuration, as the root
// command's pre-run would leave it.
func queueCLI(t *testing.T, c *cli, args ...string) (string, error) {
	t.Helper()
	cfg, err := loadConfig(c.configPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := (&app{configPath: c.configPath, cfg: cfg}).queueCommand()
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = cmd.ExecuteContext(ctx)
	fmt.Fprintf(&c.transcript, "$ vmaild queue %s\n%s%s", strings.Join(args, " "), out.String(), errOut.String())
	if err != nil {
		fmt.Fprintf(&c.transcript, "error: %v\n", err)
	}
	return out.String(), err
}

// enqueue spools messages as the server would, then lets go of the spool.
func enqueue(t *testing.T, dir, resolver string, msgs ...[]string) []string {
	t.Helper()
	q, err := queue.New(queue.Config{Dir: dir, Resolver: resolver})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Shutdown(context.Background())
	var ids []string
	for i, m := range msgs {
		body := fmt.Sprintf("From: %s\r\nSubject: queued %d\r\n\r\nbody of message %d\r\n", m[0], i, i)
		id, err := q.Enqueue(context.Background(), m[0], m[1:], strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// TestQueueCommands lists, shows, deletes and flushes queued messages,
// with the spool free and with it held as a running server holds it.
func TestQueueCommands(t *testing.T) {
	dns := queuetest.NewDNS(t)
	sink := queuetest.NewSink(t, queuetest.SinkOptions{Rcpt: func(rcpt string) error {
		if strings.HasPrefix(rcpt, "later@") {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}
		return nil
	}})
	dns.MX("remote.test", 10, "mx.remote.test")
	dns.A("mx.remote.test", "127.0.0.1")

	data := t.TempDir()
	c := newCLI(t, sqliteConfig(data)+fmt.Sprintf("queue:\n  resolver: %s\n  port: %d\n", dns.Addr, sink.Port))
	cfg, err := loadConfig(c.configPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	spool := cfg.Queue.Dir

	out, err := queueCLI(t, c, "list")
	if err != nil || !strings.Contains(out, "0 queued") {
		t.Fatalf("list of a spool never created: %v\n%s", err, out)
	}

	ids := enqueue(t, spool, dns.Addr,
		[]string{"alice@example.com", "bob@remote.test", "later@remote.test"},
		[]string{"alice@example.com", "carol@remote.test"},
		[]string{"", "dave@remote.test"},
	)

	out, err = queueCLI(t, c, "list")
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "list", out, ids[0], ids[1], ids[2], "alice@example.com", "<>", "2 pending", "3 queued")

	out, err = queueCLI(t, c, "show", ids[0])
	if err != nil {
		t.Fatal(err)
	}
	wantLines(t, "show", out, "id:", ids[0], "from:", "alice@example.com", "bob@remote.test", "later@remote.test", "pending",
		"Subject: queued 0", "body of message 0")
	if _, err := queueCLI(t, c, "show", "nosuchid"); err == nil || !strings.Contains(err.Error(), "no such item") {
		t.Errorf("show of an unknown id: %v", err)
	}

	t.Run("while the server holds the spool", func(t *testing.T) {
		held, err := queue.New(queue.Config{Dir: spool, Resolver: dns.Addr})
		if err != nil {
			t.Fatal(err)
		}
		defer held.Shutdown(context.Background())
		out, err := queueCLI(t, c, "list")
		if err != nil {
			t.Fatalf("list while locked: %v", err)
		}
		wantLines(t, "list while locked", out, ids[0], ids[1], ids[2], "3 queued")
		out, err = queueCLI(t, c, "show", ids[1])
		if err != nil {
			t.Fatalf("show while locked: %v", err)
		}
		wantLines(t, "show while locked", out, ids[1], "carol@remote.test", "message not shown", "running `vmaild serve`")
		for _, args := range [][]string{{"delete", ids[2]}, {"flush"}, {"flush", ids[0]}, {"hold", ids[0]}, {"retry", ids[0]}} {
			_, err := queueCLI(t, c, args...)
			if err == nil {
				t.Errorf("queue %s while the server holds the spool succeeded", strings.Join(args, " "))
				continue
			}
			wantLines(t, "queue "+args[0]+" while locked", err.Error(), "queue "+args[0], spool, "running `vmaild serve`")
		}
		if n := held.Len(); n != 3 {
			t.Errorf("the held queue has %d items, want 3", n)
		}
	})

	// Hold and release work on the files too; the hold is in the spool.
	out, err = queueCLI(t, c, "hold", ids[1])
	if err != nil || !strings.Contains(out, "held "+ids[1]) {
		t.Fatalf("hold: %v\n%s", err, out)
	}
	out, _ = queueCLI(t, c, "list")
	wantLines(t, "list after hold", out, ids[1], "held")
	if _, err := queueCLI(t, c, "retry", ids[1]); err == nil || !strings.Contains(err.Error(), "on hold") {
		t.Errorf("retry of a held message: %v", err)
	}
	out, err = queueCLI(t, c, "release", ids[1])
	if err != nil || !strings.Contains(out, "released "+ids[1]) {
		t.Fatalf("release: %v\n%s", err, out)
	}
	out, _ = queueCLI(t, c, "list")
	refuseLines(t, "list after release", out, "held")

	// Deleting: gone without a bounce.
	out, err = queueCLI(t, c, "delete", ids[2])
	if err != nil || !strings.Contains(out, "deleted "+ids[2]) {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if _, err := queueCLI(t, c, "delete", ids[2]); err == nil || !strings.Contains(err.Error(), "no such item") {
		t.Errorf("second delete: %v", err)
	}
	out, _ = queueCLI(t, c, "list")
	wantLines(t, "list after delete", out, "2 queued")
	refuseLines(t, "list after delete", out, ids[2])

	// Flushing one message delivers it and reports on it alone (others
	// that are due may go out too, as the server would send them).
	out, err = queueCLI(t, c, "flush", ids[1])
	if err != nil {
		t.Fatalf("flush %s: %v", ids[1], err)
	}
	wantLines(t, "flush one", out, ids[1], "done")
	refuseLines(t, "flush one", out, ids[0])
	if !delivered(sink, "carol@remote.test") {
		t.Fatalf("the remote got %+v, want carol's message", sink.Messages())
	}

	// Flushing all: bob is delivered, the remote defers later@, and the
	// command returns once each was tried.
	out, err = queueCLI(t, c, "flush")
	if err != nil {
		t.Fatalf("flush: %v", err)
	}
	wantLines(t, "flush all", out, ids[0], "1 pending, 1 delivered")
	if !delivered(sink, "bob@remote.test") || delivered(sink, "later@remote.test") {
		t.Errorf("the remote got %+v, want bob's message and not later's", sink.Messages())
	}
	out, _ = queueCLI(t, c, "show", ids[0])
	wantLines(t, "show after flush", out, "later@remote.test", "451", "bob@remote.test", "delivered")
	out, _ = queueCLI(t, c, "list")
	wantLines(t, "list after flush", out, "1 queued")
	// Retrying one recipient tries it and returns once it has.
	attempts := func() string {
		out, _ := queueCLI(t, c, "show", ids[0])
		m := regexp.MustCompile(`later@remote.test\s+pending\s+(\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("later@ is not pending:\n%s", out)
		}
		return m[1]
	}
	before := attempts()
	out, err = queueCLI(t, c, "retry", ids[0], "later@remote.test")
	if err != nil {
		t.Fatalf("retry of one recipient: %v", err)
	}
	wantLines(t, "retry one recipient", out, ids[0], "1 pending, 1 delivered")
	if n, _ := strconv.Atoi(before); attempts() != strconv.Itoa(n+1) {
		t.Errorf("later@ attempts went from %s to %s, want one more", before, attempts())
	}
	if _, err := queueCLI(t, c, "flush", "nosuchid"); err == nil || !strings.Contains(err.Error(), "no such item") {
		t.Errorf("flush of an unknown id: %v", err)
	}
}

func delivered(sink *queuetest.Sink, rcpt string) bool {
	for _, m := range sink.Messages() {
		for _, r := range m.Rcpts {
			if r == rcpt {
				return true
			}
		}
	}
	return false
}
