package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
	"github.com/vmaild/vmaild/backend/srs"
)

// TestServeSRSBounces runs vmaild with SRS on by default: the secret file
// is created 0600 in the data folder on the first start; a bounce to an
// SRS address written with it reaches the original sender's remote MX
// through the queue, from a client outside mynetworks; a forged one is
// refused at RCPT.
func TestServeSRSBounces(t *testing.T) {
	dns := queuetest.NewDNS(t)
	sink := queuetest.NewSink(t, queuetest.SinkOptions{})
	dns.MX("remote.test", 10, "mx.remote.test")
	dns.A("mx.remote.test", "127.0.0.1")
	data := filepath.Join(t.TempDir(), "data")
	d := newDaemon(t, fmt.Sprintf("data_dir: %s\nsmtp:\n  mynetworks: [192.0.2.0/24]\nqueue:\n  resolver: %s\n  port: %d\n",
		data, dns.Addr, sink.Port))
	d.start()

	secretFile := filepath.Join(data, "srs.secret")
	st, err := os.Stat(secretFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, %v; want mode 0600", st, err)
	}
	secrets, err := srs.ReadSecretFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	// srs.domain defaults to the hostname, mx.example.com here.
	ours, err := srs.New(srs.Config{Domain: "mx.example.com", Secrets: secrets})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := ours.Forward("Original.Sender@remote.test")
	if err != nil {
		t.Fatal(err)
	}
	bounce := "From: MAILER-DAEMON@other.test\r\nTo: " + addr + "\r\nSubject: Undelivered Mail\r\n\r\nThe forwarded message bounced.\r\n"
	if err := sendMail(t, d.addr("smtp"), nil, "", []string{addr}, bounce); err != nil {
		t.Fatalf("bounce to %s: %v", addr, err)
	}
	got := sink.Wait(t, 1)
	// Case aside: the directory's Resolve, which the agent calls for every
	// recipient, lower-cases remote addresses too.
	if got[0].From != "" || len(got[0].Rcpts) != 1 || !strings.EqualFold(got[0].Rcpts[0], "Original.Sender@remote.test") ||
		!bytes.Contains(got[0].Data, []byte("The forwarded message bounced.")) {
		t.Errorf("the original sender's MX got from <%s> to %v", got[0].From, got[0].Rcpts)
	}

	other, _ := srs.New(srs.Config{Domain: "mx.example.com", Secrets: []string{"not ours"}})
	forged, _ := other.Forward("victim@remote.test")
	err = sendMail(t, d.addr("smtp"), nil, "", []string{forged}, bounce)
	if err == nil || !strings.Contains(err.Error(), "550") || !strings.Contains(err.Error(), "forged SRS address") {
		t.Errorf("forged SRS address: %v, want 550 5.7.1 naming the forgery", err)
	}
	// The same client is no relay for anything else.
	if err := sendMail(t, d.addr("smtp"), nil, "", []string{"victim@remote.test"}, bounce); err == nil || !strings.Contains(err.Error(), "554") {
		t.Errorf("relay from outside mynetworks: %v, want 554", err)
	}
	d.stop()
	if n := len(sink.Messages()); n != 1 {
		t.Errorf("the sink got %d messages, want 1", n)
	}
}
