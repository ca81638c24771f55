package smtp

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/delivery"
)

func TestEHLOAdvertises(t *testing.T) {
	e := startServer(t, RoleMTA, false, func(s *Server) { s.MaxMessageBytes = 1 << 20 })
	c := dialRaw(t, e.addr)
	r := c.must("EHLO client.test", "250 ")
	caps := strings.Join(r.lines, "\n")
	for _, want := range []string{"PIPELINING", "SIZE 1048576", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING", "STARTTLS"} {
		if !strings.Contains(caps, want) {
			t.Errorf("EHLO lacks %s:\n%s", want, caps)
		}
	}
	if strings.Contains(caps, "AUTH") {
		t.Errorf("AUTH offered before TLS:\n%s", caps)
	}
	c.startTLS(e.tls)
	r = c.must("EHLO client.test", "250 ")
	caps = strings.Join(r.lines, "\n")
	if !strings.Contains(caps, "AUTH PLAIN LOGIN") || strings.Contains(caps, "STARTTLS") {
		t.Errorf("after STARTTLS want AUTH and no STARTTLS:\n%s", caps)
	}
}

func TestMTADeliversLocalMail(t *testing.T) {
	e := startServer(t, RoleMTA, false)
	c, err := gosmtp.Dial(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	msg := testMessage("someone@remote.test", "alice@example.org", "hello", "Hi Alice.\r\n..leading dot")
	if err := c.SendMail("someone@remote.test", []string{"Alice@Example.ORG"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	got := e.agent.all()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1", len(got))
	}
	d := got[0]
	if d.env.From != "someone@remote.test" || len(d.rcpts) != 1 || d.rcpts[0] != "alice@example.org" {
		t.Errorf("envelope %+v", d.env)
	}
	head, body, _ := strings.Cut(d.data, "\r\n\r\n")
	for _, want := range []string{
		"Received: from client.test ([127.0.0.1])\r\n\tby mx.example.org (vmaild) with ESMTP id " + d.env.ID,
		"\tfor <alice@example.org>;",
		"Subject: hello",
	} {
		if !strings.Contains(head, want) {
			t.Errorf("header lacks %q:\n%s", want, head)
		}
	}
	if !strings.HasPrefix(d.data, "Received: ") {
		t.Errorf("Received is not the first field:\n%s", head)
	}
	if body != "Hi Alice.\r\n..leading dot\r\n" {
		t.Errorf("body %q", body)
	}
}

func TestMTAOverTLSNamesCipher(t *testing.T) {
	e := startServer(t, RoleMTA, false)
	c, err := gosmtp.DialStartTLS(e.addr, e.tls)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("x@remote.test", []string{"bob@example.org", "alice@example.org"}, strings.NewReader(testMessage("x@remote.test", "bob@example.org", "tls", "body"))); err != nil {
		t.Fatal(err)
	}
	d := e.agent.all()[0]
	if !strings.Contains(d.data, "with ESMTPS id ") || !strings.Contains(d.data, "(using TLSv1.3 with cipher TLS_") {
		t.Errorf("Received lacks TLS details:\n%s", d.data)
	}
	if strings.Contains(d.data, "\tfor <") {
		t.Errorf("two recipients, but Received names one:\n%s", d.data)
	}
}

func TestRelayPolicy(t *testing.T) {
	tests := []struct {
		name string
		opts []serverOpt
		auth bool
		want string
	}{
		{"untrusted client", nil, false, "554 5.7.1"},
		{"client in mynetworks", []serverOpt{withMyNetworks("127.0.0.0/8")}, false, "250 2.0.0"},
		{"client outside mynetworks", []serverOpt{withMyNetworks("192.0.2.0/24", "::1/128")}, false, "554 5.7.1"},
		{"authenticated over TLS", nil, true, "250 2.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startServer(t, RoleMTA, false, tt.opts...)
			c := dialRaw(t, e.addr)
			c.must("EHLO client.test", "250 ")
			from := "someone@remote.test"
			if tt.auth {
				c.startTLS(e.tls)
				c.must("EHLO client.test", "250 ")
				c.must("AUTH PLAIN "+plainIR("alice@example.org", "secret-alice"), "235 2.0.0")
				from = "alice@example.org"
			}
			c.must("MAIL FROM:<"+from+">", "250 ")
			c.must("RCPT TO:<friend@other.test>", tt.want)
			c.must("RCPT TO:<bob@example.org>", "250 ")
			c.must("DATA", "354")
			c.send(testMessage(from, "friend@other.test", "relay", "x") + ".\r\n")
			c.expect("250 2.0.0")
			got := e.agent.all()
			if len(got) != 1 {
				t.Fatalf("%d deliveries", len(got))
			}
			relayed := strings.Contains(strings.Join(got[0].rcpts, ","), "friend@other.test")
			if relayed != strings.HasPrefix(tt.want, "250") {
				t.Errorf("recipients %v", got[0].rcpts)
			}
		})
	}
}

// The relay tricks are refused with their own replies whatever the
// client's rights, and never reach the agent as anything but refused.
func TestRelayTricks(t *testing.T) {
	tricks := []struct {
		name, rcpt, want string
	}{
		{"percent hack", "<user%other.test@example.org>", "554 5.7.1"},
		{"percent hack to ourselves", "<alice%example.org@example.org>", "554 5.7.1"},
		{"bang path", "<other.test!user@example.org>", "554 5.7.1"},
		{"quoted local part with @", `<"user@other.test"@example.org>`, "553 5.1.3"},
		{"quoted local part with percent", `<"user%other.test"@example.org>`, "554 5.7.1"},
		{"double @", "<user@other.test@example.org>", "553 5.1.3"},
		{"trailing dot, remote", "<user@other.test.>", "553 5.1.3"},
		{"trailing dot, local", "<alice@example.org.>", "553 5.1.3"},
		{"IPv4 literal", "<user@[192.0.2.1]>", "550 5.7.1"},
		{"IPv6 literal", "<user@[IPv6:2001:db8::1]>", "550 5.7.1"},
		{"empty local part", "<@example.org>", "501 5.5.2"},
		{"space in quoted local part", `<"a b"@example.org>`, "553 5.1.3"},
		{"source route to remote", "<@example.org:user@other.test>", "554 5.7.1"},
		{"source route via remote, deliverable mailbox", "<@other.test:alice@example.org>", "250 2.0.0"},
	}
	for _, trusted := range []bool{false, true} {
		var opts []serverOpt
		name := "untrusted"
		if trusted {
			name = "mynetworks"
			opts = append(opts, withMyNetworks("127.0.0.0/8"))
		}
		t.Run(name, func(t *testing.T) {
			e := startServer(t, RoleMTA, false, append(opts, func(s *Server) { s.MaxErrors = 100 })...)
			c := dialRaw(t, e.addr)
			c.must("EHLO client.test", "250 ")
			c.must("MAIL FROM:<someone@remote.test>", "250 ")
			for _, tt := range tricks {
				want := tt.want
				if trusted && tt.name == "source route to remote" {
					// The route is ignored (RFC 5321 appendix C); a trusted
					// client may relay to the mailbox.
					want = "250 2.0.0"
				}
				t.Run(tt.name, func(t *testing.T) {
					c.must("RCPT TO:"+tt.rcpt, want)
				})
			}
			c.must("DATA", "354")
			c.send(testMessage("someone@remote.test", "alice@example.org", "tricks", "x") + ".\r\n")
			c.expect("250 2.0.0")
			for _, d := range e.agent.all() {
				for _, r := range d.rcpts {
					if r != "alice@example.org" && !(trusted && r == "user@other.test") {
						t.Errorf("delivered to %q", r)
					}
				}
			}
			for _, r := range e.agent.checkedRecipients() {
				if r != "alice@example.org" {
					t.Errorf("agent asked about %q", r)
				}
			}
		})
	}
}

func TestRecipientChecks(t *testing.T) {
	e := startServer(t, RoleMTA, false, func(s *Server) { s.MaxRecipients = 3 })
	c := dialRaw(t, e.addr)
	c.must("EHLO client.test", "250 ")
	c.must("MAIL FROM:<>", "250 ")
	c.must("RCPT TO:<nobody@example.org>", "550 5.1.1")
	c.must("RCPT TO:<full@example.org>", "452 4.2.2")
	c.must("RCPT TO:<alice@example.org>", "250 ")
	c.must("RCPT TO:<sales@example.org>", "250 ")
	c.must("RCPT TO:<Alice@example.org>", "250 ")
	c.must("RCPT TO:<bob@example.org>", "452 4.5.3")
	c.must("DATA", "354")
	c.send(testMessage("", "alice@example.org", "bounce", "x") + ".\r\n")
	c.expect("250 2.0.0")
	got := e.agent.all()
	if len(got) != 1 {
		t.Fatalf("%d deliveries", len(got))
	}
	// Alice was named twice and gets one copy.
	if r := got[0].rcpts; len(r) != 2 || r[0] != "alice@example.org" || r[1] != "sales@example.org" {
		t.Errorf("recipients %v", r)
	}
	if got[0].env.From != "" {
		t.Errorf("null sender became %q", got[0].env.From)
	}
}

func TestMailFrom(t *testing.T) {
	tests := []struct {
		mail, want string
	}{
		{"MAIL FROM:<>", "250 "},
		{"MAIL FROM:<someone@remote.test> SIZE=1000", "250 "},
		{"MAIL FROM:<someone@remote.test> SIZE=1048577", "552 5.3.4"},
		{"MAIL FROM:<someone@remote.test> SIZE=99999999999999999999", "501 5.5.4"},
		{"MAIL FROM:<someone@remote.test> SIZE=abc", "501 5.5.4"},
		{"MAIL FROM:<some one@remote.test>", "501 5.5.2"},
		{"MAIL FROM:<someone@remote..test>", "553 5.1.7"},
		{"MAIL FROM:<a%b@remote.test>", "553 5.1.7"},
		{"MAIL FROM:<someone@[192.0.2.1]>", "553 5.1.7"},
		{"MAIL FROM:<jörg@remote.test>", "553 5.6.7"},
		{"MAIL FROM:<jörg@remote.test> SMTPUTF8", "250 "},
		{"MAIL FROM:<someone@remote.test> BODY=8BITMIME", "250 "},
		{"MAIL FROM:<someone@remote.test> BODY=BINARYMIME", "504 5.5.4"},
		{"MAIL FROM:<someone@remote.test> RET=FULL", "504 5.5.4"},
		{"MAIL FROM:someone@remote.test", "250 "},
		{"MAIL TO:<someone@remote.test>", "501 5.5.2"},
	}
	e := startServer(t, RoleMTA, false, func(s *Server) { s.MaxMessageBytes = 1 << 20 })
	for _, tt := range tests {
		t.Run(tt.mail, func(t *testing.T) {
			c := dialRaw(t, e.addr)
			c.must("EHLO client.test", "250 ")
			c.must(tt.mail, tt.want)
			c.must("NOOP", "250 ")
		})
	}
}

func TestDirectoryDown(t *testing.T) {
	e := startServer(t, RoleMTA, false)
	c := dialRaw(t, e.addr)
	c.must("EHLO client.test", "250 ")
	c.must("MAIL FROM:<someone@remote.test>", "250 ")
	c.must("RCPT TO:<alice@example.org>", "250 ")
	e.dir.down.Store(true)
	c.must("RCPT TO:<bob@example.org>", "451 4.3.0")
	e.dir.down.Store(false)
	// The recipient accepted before the outage is delivered.
	c.must("DATA", "354")
	c.send(testMessage("someone@remote.test", "alice@example.org", "outage", "x") + ".\r\n")
	c.expect("250 2.0.0")
	if got := e.agent.all(); len(got) != 1 || len(got[0].rcpts) != 1 {
		t.Fatalf("deliveries %+v", got)
	}
	// An outage at delivery time defers the whole message.
	e.agent.mu.Lock()
	e.agent.deliverAs["alice@example.org"] = delivery.Temp(delivery.DirectoryDown)
	e.agent.mu.Unlock()
	c.must("MAIL FROM:<someone@remote.test>", "250 ")
	c.must("RCPT TO:<alice@example.org>", "250 ")
	c.must("DATA", "354")
	c.send(testMessage("someone@remote.test", "alice@example.org", "outage2", "x") + ".\r\n")
	c.expect("451 4.3.0")
}

// TestRecipientOneDeadline: the lookups of one RCPT (the domain, then the
// resolution) share one deadline, the directory's timeout from the RCPT,
// so that a slow directory answers the RCPT within its timeout rather
// than within one timeout per lookup.
func TestRecipientOneDeadline(t *testing.T) {
	e := startServer(t, RoleMTA, false)
	e.dir.timeout = time.Hour
	c := dialRaw(t, e.addr)
	c.must("EHLO client.test", "250 ")
	c.must("MAIL FROM:<someone@remote.test>", "250 ")
	for _, rcpt := range []string{"alice@example.org", "sales@example.org"} {
		e.dir.mu.Lock()
		e.dir.deadlines = nil
		e.dir.mu.Unlock()
		before := time.Now()
		c.must("RCPT TO:<"+rcpt+">", "250 ")
		after := time.Now()
		e.dir.mu.Lock()
		got := e.dir.deadlines
		e.dir.mu.Unlock()
		if len(got) < 2 {
			t.Fatalf("RCPT %s: %d lookups recorded, want the domain and the resolution", rcpt, len(got))
		}
		for i, dl := range got {
			if !dl.Equal(got[0]) {
				t.Errorf("RCPT %s: lookup %d has deadline %v, lookup 0 %v", rcpt, i, dl, got[0])
			}
		}
		if got[0].Before(before.Add(time.Hour)) || got[0].After(after.Add(time.Hour)) {
			t.Errorf("RCPT %s: deadline %v after the RCPT was sent, want the directory timeout (1h)", rcpt, got[0].Sub(before))
		}
	}
}

// The one SMTP reply for a message follows the package comment's rule.
func TestSummarize(t *testing.T) {
	ok, temp, perm := delivery.Outcome{Kind: delivery.Delivered}, delivery.Temp(delivery.MailboxFull), delivery.Perm(delivery.NoSuchUser)
	quota := delivery.Perm(delivery.OverQuota)
	tests := []struct {
		name     string
		statuses []delivery.Outcome
		want     int
	}{
		{"all delivered", []delivery.Outcome{ok, delivery.Outcome{Kind: delivery.Queued}}, 250},
		{"some delivered, some temporary", []delivery.Outcome{ok, temp}, 250},
		{"some delivered, some permanent", []delivery.Outcome{perm, ok}, 250},
		{"all temporary", []delivery.Outcome{temp, delivery.Temp(delivery.StoreFailed)}, 452},
		{"temporary and permanent", []delivery.Outcome{perm, temp}, 452},
		{"all permanent", []delivery.Outcome{quota, perm}, 552},
		{"nonsense status", []delivery.Outcome{{Kind: 99}}, 451},
		{"none", nil, 451},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(&transaction{id: "x.1"}, tt.statuses); got.Code != tt.want {
				t.Errorf("got %d %v, want %d", got.Code, got.Message, tt.want)
			}
		})
	}
}

func TestMixedOutcomesOverTheWire(t *testing.T) {
	tests := []struct {
		name string
		as   map[string]delivery.Outcome
		want string
	}{
		{"one fails temporarily", map[string]delivery.Outcome{"bob@example.org": delivery.Temp(delivery.StoreFailed)}, "250 2.0.0"},
		{"all fail temporarily", map[string]delivery.Outcome{"bob@example.org": delivery.Temp(delivery.StoreFailed), "alice@example.org": delivery.Temp(delivery.DirectoryDown)}, "451 4.3.0"},
		{"all fail permanently", map[string]delivery.Outcome{"bob@example.org": delivery.Perm(delivery.OverQuota), "alice@example.org": delivery.Perm(delivery.OverQuota)}, "552 5.2.2"},
		{"permanent and temporary", map[string]delivery.Outcome{"bob@example.org": delivery.Perm(delivery.OverQuota), "alice@example.org": delivery.Temp(delivery.StoreFailed)}, "451 4.3.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startServer(t, RoleMTA, false)
			e.agent.deliverAs = tt.as
			c, err := gosmtp.Dial(e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.SendMail("x@remote.test", []string{"alice@example.org", "bob@example.org"}, strings.NewReader(testMessage("x@remote.test", "a@example.org", "mixed", "x")))
			var se *gosmtp.SMTPError
			got := "250 2.0.0"
			if errors.As(err, &se) {
				got = replyCode(se)
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// replyCode is "NNN X.Y.Z" of a reply the go-smtp client got.
func replyCode(se *gosmtp.SMTPError) string {
	ec := se.EnhancedCode
	return fmt.Sprintf("%d %d.%d.%d", se.Code, ec[0], ec[1], ec[2])
}
