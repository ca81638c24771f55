package smtp

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	gosasl "github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// TestRequireTLS: the MTA and submission listeners advertise REQUIRETLS
// (RFC 8689) only after STARTTLS, refuse the parameter in the clear, and
// hand the mark to the agent with the envelope; LMTP never offers it.
func TestRequireTLS(t *testing.T) {
	e := startServer(t, RoleMTA, false)
	c := dialRaw(t, e.addr)
	r := c.must("EHLO client.test", "250 ")
	if strings.Contains(r.String(), "REQUIRETLS") {
		t.Errorf("REQUIRETLS advertised without TLS: %v", r)
	}
	c.must("MAIL FROM:<someone@remote.test> REQUIRETLS", "530 5.7.10")
	c.startTLS(e.tls)
	r = c.must("EHLO client.test", "250 ")
	if !strings.Contains(r.String(), "REQUIRETLS") {
		t.Errorf("REQUIRETLS not advertised over TLS: %v", r)
	}
	c.must("MAIL FROM:<someone@remote.test> REQUIRETLS", "250 ")
	c.must("RCPT TO:<alice@example.org>", "250 ")
	c.must("DATA", "354 ")
	c.send(testMessage("someone@remote.test", "alice@example.org", "rt", "secret") + ".\r\n")
	c.expect("250 ")
	c.must("MAIL FROM:<someone@remote.test>", "250 ")
	c.must("RCPT TO:<alice@example.org>", "250 ")
	c.must("DATA", "354 ")
	c.send(testMessage("someone@remote.test", "alice@example.org", "plain", "not secret") + ".\r\n")
	c.expect("250 ")
	got := e.agent.all()
	if len(got) != 2 || !got[0].env.RequireTLS || got[1].env.RequireTLS {
		t.Fatalf("envelopes: %+v", got)
	}

	lmtp := startServer(t, RoleLMTP, false)
	c = dialRaw(t, lmtp.addr)
	c.must("LHLO client.test", "250 ")
	c.startTLS(lmtp.tls)
	if r := c.must("LHLO client.test", "250 "); strings.Contains(r.String(), "REQUIRETLS") {
		t.Errorf("LMTP advertises REQUIRETLS: %v", r)
	}
}

// TestRequireTLSSmtplib: python3's smtplib, a real client, submits with
// REQUIRETLS after STARTTLS and the agent sees the mark.
func TestRequireTLSSmtplib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 not installed")
		}
		t.Skip("python3 not installed")
	}
	e := startServer(t, RoleSubmission, false)
	const script = `
import smtplib, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(host, int(port), timeout=30)
s.ehlo("smtplib.test")
if s.has_extn("requiretls"):
    sys.exit("REQUIRETLS offered before STARTTLS")
s.starttls(context=ctx)
s.ehlo("smtplib.test")
if not s.has_extn("requiretls"):
    sys.exit("REQUIRETLS not offered after STARTTLS")
s.login("alice@example.org", "secret-alice")
msg = "From: <alice@example.org>\r\nTo: <friend@remote.test>\r\nSubject: rt\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <rt@test>\r\n\r\nhello\r\n"
s.sendmail("alice@example.org", ["friend@remote.test"], msg, mail_options=["REQUIRETLS"])
s.quit()
`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", script, e.addr).CombinedOutput()
	if err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	got := e.agent.all()
	if len(got) != 1 || !got[0].env.RequireTLS || got[0].rcpts[0] != "friend@remote.test" {
		t.Fatalf("deliveries: %+v", got)
	}
}

// TestRequireTLSImplicit: submission over implicit TLS (465) offers and
// takes REQUIRETLS too.
func TestRequireTLSImplicit(t *testing.T) {
	e := startServer(t, RoleSubmission, true)
	c, err := gosmtp.DialTLS(e.addr, e.tls)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("REQUIRETLS"); !ok {
		t.Fatal("REQUIRETLS not offered over implicit TLS")
	}
	if err := c.Auth(gosasl.NewPlainClient("", "bob@example.org", "secret-bob")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("bob@example.org", &gosmtp.MailOptions{RequireTLS: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("friend@other.test", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(testMessage("bob@example.org", "friend@other.test", "465rt", "x")))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := e.agent.all(); len(got) != 1 || !got[0].env.RequireTLS {
		t.Fatalf("deliveries %+v", got)
	}
}
