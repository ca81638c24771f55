package smtp

import (
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	gosasl "github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/protocols/login/logintest"
)

func TestSubmissionNeedsTLSAndAuth(t *testing.T) {
	e := startServer(t, RoleSubmission, false)
	c := dialRaw(t, e.addr)
	r := c.must("EHLO client.test", "250 ")
	if strings.Contains(strings.Join(r.lines, "\n"), "AUTH") {
		t.Errorf("AUTH offered before STARTTLS: %v", r)
	}
	c.must("AUTH PLAIN "+plainIR("alice@example.org", "secret-alice"), "538 5.7.11")
	c.must("AUTH LOGIN", "538 5.7.11")
	c.must("MAIL FROM:<alice@example.org>", "530 5.7.0")
	c.startTLS(e.tls)
	c.must("EHLO client.test", "250 ")
	c.must("MAIL FROM:<alice@example.org>", "530 5.7.0")
	c.must("RCPT TO:<bob@example.org>", "502 5.5.1")
	c.must("AUTH PLAIN "+plainIR("alice@example.org", "secret-alice"), "235 2.0.0")
	c.must("MAIL FROM:<alice@example.org>", "250 ")
}

func TestSubmissionInsecureListener(t *testing.T) {
	e := startServer(t, RoleSubmission, false, withInsecureAuth, func(s *Server) { s.TLSConfig = nil })
	c := dialRaw(t, e.addr)
	r := c.must("EHLO client.test", "250 ")
	if !strings.Contains(strings.Join(r.lines, "\n"), "AUTH PLAIN LOGIN") {
		t.Errorf("AUTH not offered on an insecure listener: %v", r)
	}
	c.must("STARTTLS", "502 5.5.1")
	c.must("AUTH PLAIN "+plainIR("alice@example.org", "secret-alice"), "235 2.0.0")
}

func TestSubmissionSenderOwnership(t *testing.T) {
	tests := []struct {
		from, want string
	}{
		{"alice@example.org", "250 "},
		{"ALICE@Example.Org", "250 "},
		{"sales@example.org", "250 "}, // an alias that includes alice
		{"bob@example.org", "553 5.7.1"},
		{"info@example.net", "553 5.7.1"}, // an alias of someone else
		{"nobody@example.org", "553 5.7.1"},
		{"alice@remote.test", "553 5.7.1"},
		{"", "553 5.7.1"},
		{"alice%remote.test@example.org", "553 5.1.7"},
	}
	e := startServer(t, RoleSubmission, false)
	for _, tt := range tests {
		t.Run(tt.from, func(t *testing.T) {
			c := dialRaw(t, e.addr)
			c.must("EHLO client.test", "250 ")
			c.startTLS(e.tls)
			c.must("EHLO client.test", "250 ")
			c.must("AUTH PLAIN "+plainIR("alice@example.org", "secret-alice"), "235 ")
			c.must("MAIL FROM:<"+tt.from+">", tt.want)
		})
	}
	t.Run("directory down", func(t *testing.T) {
		c := dialRaw(t, e.addr)
		c.must("EHLO client.test", "250 ")
		c.startTLS(e.tls)
		c.must("EHLO client.test", "250 ")
		c.must("AUTH PLAIN "+plainIR("alice@example.org", "secret-alice"), "235 ")
		e.dir.down.Store(true)
		defer e.dir.down.Store(false)
		c.must("MAIL FROM:<sales@example.org>", "451 4.3.0")
	})
}

func TestSubmissionRelaysAndFixesHeaders(t *testing.T) {
	e := startServer(t, RoleSubmission, false)
	c, err := gosmtp.DialStartTLS(e.addr, e.tls)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(gosasl.NewPlainClient("", "alice@example.org", "secret-alice")); err != nil {
		t.Fatal(err)
	}
	bare := "From: alice@example.org\r\nTo: friend@other.test\r\nSubject: no date\r\n\r\nhi\r\n"
	if err := c.SendMail("alice@example.org", []string{"Friend@Other.Test", "bob@example.org"}, strings.NewReader(bare)); err != nil {
		t.Fatal(err)
	}
	full := testMessage("alice@example.org", "bob@example.org", "complete", "hi")
	if err := c.SendMail("alice@example.org", []string{"bob@example.org"}, strings.NewReader(full)); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("nobody@example.org", nil); err == nil {
		t.Error("RCPT outside a transaction accepted")
	}
	got := e.agent.all()
	if len(got) != 2 {
		t.Fatalf("%d deliveries", len(got))
	}
	first := got[0]
	if r := first.env.Recipients; len(r) != 2 || r[0] != "Friend@other.test" || r[1] != "bob@example.org" {
		t.Errorf("recipients %v (remote local parts keep their case)", r)
	}
	head, _, _ := strings.Cut(first.data, "\r\n\r\n")
	for _, want := range []string{"with ESMTPSA id", "\r\nDate: ", "\r\nMessage-ID: <", "@mx.example.org>\r\n"} {
		if !strings.Contains(head+"\r\n", want) {
			t.Errorf("header lacks %q:\n%s", want, head)
		}
	}
	if strings.Contains(head, "alice@example.org\r\n\tby") || strings.Contains(head, "secret") {
		t.Errorf("Received header names the user or password:\n%s", head)
	}
	second := got[1].data
	if strings.Count(second, "Date: ") != 1 || strings.Count(second, "Message-ID: ") != 1 {
		t.Errorf("headers duplicated:\n%s", second)
	}
}

func TestSubmissionMalformedHeader(t *testing.T) {
	e := startServer(t, RoleSubmission, false)
	c, err := gosmtp.DialStartTLS(e.addr, e.tls)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(gosasl.NewPlainClient("", "alice@example.org", "secret-alice")); err != nil {
		t.Fatal(err)
	}
	err = c.SendMail("alice@example.org", []string{"bob@example.org"}, strings.NewReader("this is no header\r\n\r\nbody\r\n"))
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) || replyCode(se) != "554 5.6.0" {
		t.Fatalf("got %v, want 554 5.6.0", err)
	}
	if n := len(e.agent.all()); n != 0 {
		t.Fatalf("%d deliveries", n)
	}
}

func TestSubmissionImplicitTLS(t *testing.T) {
	e := startServer(t, RoleSubmission, true)
	c, err := gosmtp.DialTLS(e.addr, e.tls)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered inside TLS")
	}
	if err := c.Auth(gosasl.NewLoginClient("bob@example.org", "secret-bob")); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("bob@example.org", []string{"friend@other.test"}, strings.NewReader(testMessage("bob@example.org", "friend@other.test", "465", "x"))); err != nil {
		t.Fatal(err)
	}
	if got := e.agent.all(); len(got) != 1 || !strings.Contains(got[0].data, "with ESMTPSA") {
		t.Fatalf("deliveries %+v", got)
	}
}

func TestSubmissionAuthFailures(t *testing.T) {
	authOn := func(t *testing.T, e *env) *rawClient {
		c := dialRaw(t, e.addr)
		c.must("EHLO client.test", "250 ")
		c.startTLS(e.tls)
		c.must("EHLO client.test", "250 ")
		return c
	}
	t.Run("wrong password, then the cap", func(t *testing.T) {
		e := startServer(t, RoleSubmission, false)
		c := authOn(t, e)
		c.must("AUTH PLAIN "+plainIR("alice@example.org", "wrong"), "535 5.7.8")
		c.must("AUTH PLAIN "+plainIR("nobody@example.org", "wrong"), "535 5.7.8")
		c.must("AUTH PLAIN "+plainIR("alice@example.org", "wrong"), "421 4.7.0")
		if !c.closed() {
			t.Fatal("connection open after the AUTH cap")
		}
	})
	t.Run("LOGIN exchange", func(t *testing.T) {
		e := startServer(t, RoleSubmission, false)
		c := authOn(t, e)
		c.must("AUTH LOGIN", "334 VXNlcm5hbWU6")
		c.must(base64.StdEncoding.EncodeToString([]byte("alice@example.org")), "334 UGFzc3dvcmQ6")
		c.must(base64.StdEncoding.EncodeToString([]byte("wrong")), "535 5.7.8")
		c.must("AUTH LOGIN "+base64.StdEncoding.EncodeToString([]byte("alice@example.org")), "334 UGFzc3dvcmQ6")
		c.must(base64.StdEncoding.EncodeToString([]byte("secret-alice")), "235 2.0.0")
	})
	t.Run("directory down is temporary", func(t *testing.T) {
		e := startServer(t, RoleSubmission, false)
		e.dir.authDown.Store(true)
		c := authOn(t, e)
		for i := 0; i < 5; i++ {
			c.must("AUTH PLAIN "+plainIR("alice@example.org", "secret-alice"), "454 4.7.0")
		}
		e.dir.authDown.Store(false)
		c.must("AUTH PLAIN "+plainIR("alice@example.org", "secret-alice"), "235 2.0.0")
	})
	t.Run("no lockout", func(t *testing.T) {
		logins, err := login.New(login.Config{DummyScheme: "SSHA", PenaltyBase: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		e := startServer(t, RoleSubmission, false, func(s *Server) { s.Logins = logins; s.MaxAuthFailures = 100 })
		c := authOn(t, e)
		for range 10 {
			c.must("AUTH PLAIN "+plainIR("alice@example.org", "wrong"), "535 5.7.8")
		}
		// Slowed, never locked: the right password still works.
		c.must("AUTH PLAIN "+plainIR("alice@example.org", "secret-alice"), "235 2.0.0")
		if st := logins.Stats(); st.Failed != 10 || st.OK != 1 || st.Penalties == 0 {
			t.Fatalf("login service saw %+v", st)
		}
	})
	t.Run("no room to verify is temporary", func(t *testing.T) {
		e := startServer(t, RoleSubmission, false, func(s *Server) { s.Logins = logintest.Saturated(t) })
		c := authOn(t, e)
		for range 5 {
			c.must("AUTH PLAIN "+plainIR("alice@example.org", "wrong"), "454 4.7.0")
		}
		c.must("AUTH LOGIN", "334 VXNlcm5hbWU6")
		c.must(base64.StdEncoding.EncodeToString([]byte("nobody@example.org")), "334 UGFzc3dvcmQ6")
		c.must(base64.StdEncoding.EncodeToString([]byte("wrong")), "454 4.7.0")
	})
}

// Passwords never reach the log, whatever the outcome of AUTH.
func TestPasswordsNotLogged(t *testing.T) {
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := startServer(t, RoleSubmission, false, func(s *Server) { s.Logger = log })
	c := dialRaw(t, e.addr)
	c.must("EHLO client.test", "250 ")
	c.startTLS(e.tls)
	c.must("EHLO client.test", "250 ")
	c.must("AUTH PLAIN "+plainIR("alice@example.org", "hunter2-wrong"), "535 ")
	c.must("AUTH LOGIN", "334 ")
	c.must(base64.StdEncoding.EncodeToString([]byte("alice@example.org")), "334 ")
	c.must(base64.StdEncoding.EncodeToString([]byte("hunter3-wrong")), "535 ")
	e.dir.authDown.Store(true)
	c = dialRaw(t, e.addr)
	c.must("EHLO client.test", "250 ")
	c.startTLS(e.tls)
	c.must("EHLO client.test", "250 ")
	c.must("AUTH PLAIN "+plainIR("alice@example.org", "secret-alice"), "454 ")
	e.dir.authDown.Store(false)
	c.must("AUTH PLAIN "+plainIR("alice@example.org", "secret-alice"), "235 ")
	e.srv.Close()
	logged := buf.String()
	for _, pw := range []string{"hunter2", "hunter3", "secret-alice", plainIR("alice@example.org", "secret-alice")} {
		if strings.Contains(logged, pw) {
			t.Errorf("log contains %q:\n%s", pw, logged)
		}
	}
	if !strings.Contains(logged, "authentication failed") || !strings.Contains(logged, "user=alice@example.org") {
		t.Errorf("log lacks the AUTH outcomes:\n%s", logged)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
