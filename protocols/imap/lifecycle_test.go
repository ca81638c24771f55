package imap

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/protocols/gate"
)

func TestExamineUnselectClose(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 3; i++ {
		e.deliver(t, "", "Subject: x\r\n\r\nx\r\n")
	}
	r := e.raw(t)
	r.login()
	steps := []struct{ send, want string }{
		{"A1 EXAMINE INBOX\r\n", "A1 OK [READ-ONLY]"},
		{"A2 STORE 1 +FLAGS (\\Deleted)\r\n", "A2 NO Mailbox is read-only"},
		{"A3 FETCH 1 BODY[]\r\n", "A3 OK"}, // no \Seen in a read-only mailbox
		{"A4 FETCH 1 FLAGS\r\n", "A4 OK"},
		{"A5 CLOSE\r\n", "A5 OK"},
		{"A6 SELECT INBOX\r\n", "A6 OK [READ-WRITE]"},
		{"A7 STORE 1:2 +FLAGS.SILENT (\\Deleted)\r\n", "A7 OK"},
		{"A8 UNSELECT\r\n", "A8 OK"},
		{"A9 STATUS INBOX (MESSAGES DELETED)\r\n", "A9 OK"},
		{"B1 SELECT INBOX\r\n", "B1 OK"},
		{"B2 CLOSE\r\n", "B2 OK"},
		{"B3 STATUS INBOX (MESSAGES)\r\n", "B3 OK"},
		{"B4 LSUB \"\" \"*\"\r\n", "B4 OK"},
	}
	var all []string
	for _, s := range steps {
		r.send(s.send)
		lines := r.until(s.want[:3])
		all = append(all, lines...)
		if last := lines[len(lines)-1]; !strings.HasPrefix(last, s.want) {
			t.Fatalf("%q: %q", s.send, lines)
		}
	}
	text := strings.Join(all, "\n")
	for _, want := range []string{
		`* 1 FETCH (FLAGS (\Recent))`,           // A4: BODY[] in EXAMINE set no \Seen
		`* STATUS INBOX (MESSAGES 3 DELETED 2)`, // UNSELECT expunged nothing
		`* STATUS INBOX (MESSAGES 1)`,           // CLOSE did
		`* LSUB (\Sent) "/" Sent`,               // auto-subscribed special use, as Dovecot lists it
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}
}

func TestShutdown(t *testing.T) {
	e := newEnv(t)
	idle := e.raw(t)
	idle.login()
	idling := e.raw(t)
	idling.login()
	idling.send("I1 SELECT INBOX\r\nI2 IDLE\r\n")
	idling.until("+ ")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*raw{idle, idling} {
		if l := r.until("* BYE"); !strings.Contains(l[len(l)-1], "shutting down") {
			t.Errorf("BYE: %q", l)
		}
		if !r.closed() {
			t.Error("still open after Shutdown")
		}
	}
	if _, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		t.Error("still accepting after Shutdown")
	}
	if err := e.srv.Shutdown(ctx); !errors.Is(err, ErrServerClosed) {
		t.Errorf("second Shutdown: %v", err)
	}
}

func TestConnectionLimitAndTimeout(t *testing.T) {
	e := newEnv(t, func(s *Server) {
		s.Gate = &gate.Gate{Limits: gate.Config{MaxPerNetwork: 2}}
		s.Timeouts.Login = 200 * time.Millisecond
	})
	a, b := e.raw(t), e.raw(t)
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	third := &raw{t: t, c: c, br: newReader(c)}
	if l := third.line(); !strings.HasPrefix(l, "* BYE [UNAVAILABLE] Too many connections") {
		t.Errorf("third connection: %q", l)
	}
	// An unauthenticated client that says nothing is logged out.
	for _, r := range []*raw{a, b} {
		if l := r.line(); !strings.HasPrefix(l, "* BYE Autologout") {
			t.Errorf("idle before login: %q", l)
		}
	}
	// Their slots are free again.
	r := e.raw(t)
	r.send("N1 NOOP\r\n")
	if l := r.line(); !strings.HasPrefix(l, "N1 OK") {
		t.Errorf("after the others left: %q", l)
	}
}

func TestAppendToSelectedAndStatusList(t *testing.T) {
	e := newEnv(t)
	c := e.login(t, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := appendMsg(t, c, "INBOX", "Subject: a\r\n\r\na\r\n", nil); err != nil {
		t.Fatal(err)
	}
	// APPEND to the selected folder is announced with EXISTS.
	if n := c.Mailbox().NumMessages; n != 1 {
		t.Errorf("EXISTS after APPEND: %d", n)
	}
	l, err := c.List("", "*", &goimap.ListOptions{ReturnStatus: &goimap.StatusOptions{NumMessages: true, Size: true}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range l {
		if d.Mailbox == "INBOX" && (d.Status == nil || *d.Status.NumMessages != 1) {
			t.Errorf("LIST-STATUS INBOX: %+v", d.Status)
		}
	}
}
