package smtp

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/delivery"
)

// startLMTP serves LMTP on a unix socket, as Postfix's lmtp transport uses it.
func startLMTP(t *testing.T) (*env, string) {
	t.Helper()
	dir := newFakeDirectory()
	agent := newFakeAgent(dir)
	// Socket paths are limited to ~108 bytes; t.TempDir() can be longer.
	sockDir, err := os.MkdirTemp("", "lmtp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	path := filepath.Join(sockDir, "lmtp.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Role: RoleLMTP, Hostname: "mx.example.org", Directory: dir, Agent: agent, Logger: testLogger(t), SpoolDir: t.TempDir()}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return &env{srv: s, dir: dir, agent: agent, addr: path}, path
}

func TestLMTPPerRecipientStatus(t *testing.T) {
	e, path := startLMTP(t)
	e.agent.deliverAs["bob@example.org"] = delivery.Perm(delivery.OverQuota)
	e.agent.deliverAs["carol@example.net"] = delivery.Temp(delivery.StoreFailed)
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c := gosmtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("postfix.example.org"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("LMTP offers AUTH")
	}
	if err := c.Mail("someone@remote.test", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"alice@example.org", "bob@example.org", "carol@example.net", "alice@example.org"} {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatalf("RCPT %s: %v", r, err)
		}
	}
	for _, bad := range []struct{ rcpt, want string }{
		{"nobody@example.org", "550 5.1.1"},
		{"full@example.org", "452 4.2.2"},
		{"friend@other.test", "550 5.1.2"},
	} {
		var se *gosmtp.SMTPError
		if err := c.Rcpt(bad.rcpt, nil); !errors.As(err, &se) || replyCode(se) != bad.want {
			t.Errorf("RCPT %s: %v, want %s", bad.rcpt, err, bad.want)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, testMessage("someone@remote.test", "alice@example.org", "lmtp", "x"))
	resp, err := w.CloseWithLMTPResponse()
	var lerr gosmtp.LMTPDataError
	if !errors.As(err, &lerr) {
		t.Fatalf("want per-recipient errors, got %v", err)
	}
	if _, ok := resp["alice@example.org"]; !ok {
		t.Errorf("alice not delivered: %v", resp)
	}
	if se := lerr["bob@example.org"]; se == nil || replyCode(se) != "552 5.2.2" {
		t.Errorf("bob: %v", lerr["bob@example.org"])
	}
	if se := lerr["carol@example.net"]; se == nil || replyCode(se) != "451 4.3.0" {
		t.Errorf("carol: %v", lerr["carol@example.net"])
	}
	got := e.agent.all()
	if len(got) != 1 || len(got[0].rcpts) != 3 {
		t.Fatalf("deliveries %+v", got)
	}
	if !strings.Contains(got[0].data, "from postfix.example.org (local socket)\r\n\tby mx.example.org (vmaild) with LMTP id ") {
		t.Errorf("Received:\n%s", got[0].data)
	}
}

func TestLMTPRawReplies(t *testing.T) {
	e, path := startLMTP(t)
	e.agent.deliverAs["bob@example.org"] = delivery.Temp(delivery.MailboxFull)
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c := &rawClient{t: t, conn: conn}
	c.r = bufio.NewReader(conn)
	c.expect("220 mx.example.org LMTP")
	c.must("EHLO postfix.example.org", "500 5.5.1")
	c.must("LHLO postfix.example.org", "250 ")
	c.must("AUTH PLAIN "+plainIR("alice@example.org", "secret-alice"), "502 5.5.1")
	c.must("MAIL FROM:<>", "250 ")
	c.must("RCPT TO:<alice@example.org>", "250 ")
	c.must("RCPT TO:<bob@example.org>", "250 ")
	msg := "Subject: chunked\r\n\r\nx\r\n"
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(msg), msg))
	c.expect("250 2.0.0 <alice@example.org> Delivered")
	c.expect("452 4.2.2 <bob@example.org> Mailbox full")
	// A bare LF fails every recipient with the same reply.
	c.must("MAIL FROM:<>", "250 ")
	c.must("RCPT TO:<alice@example.org>", "250 ")
	c.must("RCPT TO:<carol@example.net>", "250 ")
	c.must("DATA", "354")
	c.send("Subject: x\r\n\r\nbad\n.\nline\r\n.\r\n")
	c.expect("554 5.5.2 <alice@example.org>")
	c.expect("554 5.5.2 <carol@example.net>")
	c.must("NOOP", "250 ")
	if n := len(e.agent.all()); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}
}
