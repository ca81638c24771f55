package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

// TestServeForwardSRS: an alias that forwards to a remote address sends the
// message on with an SRS sender (a relayed recipient keeps the original
// one), and a bounce to that SRS address reaches the original sender. When
// our own queue bounces a forwarded message, the DSN goes to the original
// sender directly (the SRS domain has no MX here: a round trip through our
// own MX would not arrive).
func TestServeForwardSRS(t *testing.T) {
	dns := queuetest.NewDNS(t)
	sink := queuetest.NewSink(t, queuetest.SinkOptions{Rcpt: func(rcpt string) error {
		if rcpt == "gone@remote.test" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}})
	for _, dom := range []string{"remote.test", "origin.test"} {
		dns.MX(dom, 10, "mx."+dom)
		dns.A("mx."+dom, "127.0.0.1")
	}
	data := filepath.Join(t.TempDir(), "data")
	d := newDaemon(t, fmt.Sprintf("data_dir: %s\nsmtp:\n  mynetworks: [127.0.0.0/8]\nqueue:\n  resolver: %s\n  port: %d\n",
		data, dns.Addr, sink.Port))
	d.start()
	d.cli("", "domain", "add", "example.com")
	d.cli("secret\n", "user", "add", "alice@example.com", "--password-stdin")
	d.cli("", "alias", "add", "fwd@example.com", "alice@example.com", "friend@remote.test")

	msg := "From: someone@origin.test\r\nTo: fwd@example.com\r\nSubject: forwarded\r\n\r\nHello\r\n"
	if err := sendMail(t, d.addr("smtp"), nil, "someone@origin.test", []string{"fwd@example.com", "direct@remote.test"}, msg); err != nil {
		t.Fatalf("to the forwarding alias: %v", err)
	}
	got := sink.Wait(t, 2)
	var fwdFrom string
	for _, m := range got {
		switch strings.Join(m.Rcpts, ",") {
		case "friend@remote.test":
			fwdFrom = m.From
		case "direct@remote.test":
			if m.From != "someone@origin.test" {
				t.Errorf("relayed with sender %q, want the original", m.From)
			}
		default:
			t.Errorf("unexpected delivery to %v", m.Rcpts)
		}
	}
	if !strings.HasPrefix(fwdFrom, "SRS0=") || !strings.HasSuffix(fwdFrom, "@mx.example.com") {
		t.Fatalf("forwarded with sender %q, want an SRS0 address of mx.example.com", fwdFrom)
	}
	if n := len(mailboxFiles(t, data, "alice")); n != 1 {
		t.Errorf("alice has %d copies", n)
	}

	// The remote side bounces it to the SRS sender: it reaches the origin.
	bounce := "From: MAILER-DAEMON@remote.test\r\nTo: " + fwdFrom + "\r\nSubject: Undelivered Mail\r\n\r\nfriend is gone\r\n"
	if err := sendMail(t, d.addr("smtp"), nil, "", []string{fwdFrom}, bounce); err != nil {
		t.Fatalf("bounce to %s: %v", fwdFrom, err)
	}
	got = sink.Wait(t, 3)
	if b := got[2]; b.From != "" || len(b.Rcpts) != 1 || !strings.EqualFold(b.Rcpts[0], "someone@origin.test") || !strings.Contains(string(b.Data), "friend is gone") {
		t.Errorf("the bounce reached %v from <%s>", b.Rcpts, b.From)
	}

	// A forward the remote MX refuses: our queue's DSN reaches the origin.
	d.cli("", "alias", "add", "old@example.com", "gone@remote.test")
	msg = "From: someone@origin.test\r\nTo: old@example.com\r\nSubject: to the old address\r\n\r\nHello\r\n"
	if err := sendMail(t, d.addr("smtp"), nil, "someone@origin.test", []string{"old@example.com"}, msg); err != nil {
		t.Fatalf("to the dead forward: %v", err)
	}
	got = sink.Wait(t, 4)
	b := got[3]
	if b.From != "" || len(b.Rcpts) != 1 || b.Rcpts[0] != "someone@origin.test" ||
		!strings.Contains(string(b.Data), "gone@remote.test") || !strings.Contains(string(b.Data), "Subject: to the old address") {
		t.Errorf("our DSN reached %v from <%s>:\n%s", b.Rcpts, b.From, b.Data)
	}
	d.stop()
}
