package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

// TestServeRequireTLS: a message submitted with REQUIRETLS leaves the
// running server with REQUIRETLS, over TLS that DANE authenticates (the
// remote's MX and TLSA answers carry the AD bit); one to a domain with
// neither DANE nor MTA-STS is bounced to the sender with 5.7.30.
func TestServeRequireTLS(t *testing.T) {
	dns := queuetest.NewDNS(t)
	self, _ := queuetest.SelfSigned(t, "mx.remote.test")
	sink := queuetest.NewSink(t, queuetest.SinkOptions{TLS: self, RequireTLS: true})
	dns.MX("remote.test", 10, "mx.remote.test")
	dns.A("mx.remote.test", "127.0.0.1")
	tlsa := fmt.Sprintf("_%d._tcp.mx.remote.test", sink.Port)
	spki := sha256.Sum256(self.Certificates[0].Leaf.RawSubjectPublicKeyInfo)
	dns.TLSA(tlsa, 3, 1, 1, spki[:])
	dns.Secure("remote.test", true)
	dns.Secure("mx.remote.test", true)
	dns.Secure(tlsa, true)
	dns.MX("plain.test", 10, "mx.remote.test") // same MX, no DNSSEC

	d := newDaemon(t, fmt.Sprintf("queue:\n  resolver: %s\n  port: %d\n  retry_min: 1h\n", dns.Addr, sink.Port))
	d.start()
	d.cli("", "domain", "add", "example.com")
	d.cli("zoe-secret\n", "user", "add", "zoe@example.com", "--password-stdin")

	submit := func(to string) {
		t.Helper()
		c, err := gosmtp.DialStartTLS(d.addr("submission"), insecureTLS)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if ok, _ := c.Extension("REQUIRETLS"); !ok {
			t.Fatal("submission does not advertise REQUIRETLS after STARTTLS")
		}
		if err := c.Auth(sasl.NewPlainClient("", "zoe@example.com", "zoe-secret")); err != nil {
			t.Fatal(err)
		}
		msg := "From: zoe@example.com\r\nTo: " + to + "\r\nSubject: secret\r\n\r\nfor your eyes only\r\n"
		if err := c.Mail("zoe@example.com", &gosmtp.MailOptions{RequireTLS: true}); err != nil {
			t.Fatalf("MAIL FROM with REQUIRETLS: %v", err)
		}
		if err := c.Rcpt(to, nil); err != nil {
			t.Fatalf("RCPT %s: %v", to, err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("submit to %s: %v", to, err)
		}
		c.Quit()
	}
	submit("bob@remote.test")
	got := sink.Wait(t, 1)
	if !got[0].RequireTLS || !got[0].TLS || !strings.Contains(string(got[0].Data), "for your eyes only") {
		t.Fatalf("sink got %+v", got[0])
	}

	submit("carol@plain.test")
	var bounce string
	limit := time.Now().Add(30 * time.Second) // a safety net, not a timing assertion
	for bounce == "" {
		if got := pop3Retrieve(t, d.addr("pop3"), "zoe@example.com", "zoe-secret"); len(got) > 0 {
			bounce = got[0]
		} else if time.Now().After(limit) {
			t.Fatalf("no bounce for the REQUIRETLS message:\n%s", d.out.String())
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, want := range []string{"Status: 5.7.30", "REQUIRETLS", "X-Vmaild-TLS-Policy: requiretls"} {
		if !strings.Contains(bounce, want) {
			t.Errorf("bounce lacks %q:\n%s", want, bounce)
		}
	}
	if n := len(sink.Messages()); n != 1 {
		t.Errorf("sink got %d messages, want 1", n)
	}
	if out := d.out.String(); !strings.Contains(out, "tls_policy=dane") || !strings.Contains(out, "requiretls=true") {
		t.Errorf("log does not name the policy and the mark:\n%s", out)
	}
	d.stop()
}

// TestCheckResolverDNSSEC: `vmaild config check` says whether the
// resolver validates DNSSEC, which DANE depends on.
func TestCheckResolverDNSSEC(t *testing.T) {
	dns := queuetest.NewDNS(t)
	dns.TXT(".", "root") // any record: the name exists
	ctx := context.Background()
	if c := checkResolver(ctx, dns.Addr, true); c.err != nil || !strings.Contains(c.ok, "does not validate DNSSEC") {
		t.Errorf("without the AD bit: %+v", c)
	}
	dns.Secure(".", true)
	if c := checkResolver(ctx, dns.Addr, true); c.err != nil || !strings.Contains(c.ok, "validates DNSSEC (DANE can apply)") {
		t.Errorf("with the AD bit: %+v", c)
	}
	if c := checkResolver(ctx, dns.Addr, false); c.err != nil || c.ok != "answers" {
		t.Errorf("DANE off: %+v", c)
	}
}
