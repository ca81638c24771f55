package imap

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gosasl "github.com/emersion/go-sasl"

	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/protocols/login/logintest"
)

func TestTLS(t *testing.T) {
	e := newEnv(t, withTLS(false))
	opts := &imapclient.Options{TLSConfig: clientTLS()}

	t.Run("plaintext refuses auth", func(t *testing.T) {
		c := e.dial(t, nil)
		caps, err := c.Capability().Wait()
		if err != nil {
			t.Fatal(err)
		}
		if !caps.Has(goimap.CapStartTLS) || !caps.Has(goimap.CapLoginDisabled) || len(caps.AuthMechanisms()) != 0 {
			t.Errorf("plaintext caps: %v", caps)
		}
		if err := c.Login(testUser, testPass).Wait(); imapCode(err) != goimap.ResponseCodePrivacyRequired {
			t.Errorf("plaintext LOGIN: %v", err)
		}
		if err := c.Authenticate(gosasl.NewPlainClient("", testUser, testPass)); imapCode(err) != goimap.ResponseCodePrivacyRequired {
			t.Errorf("plaintext AUTHENTICATE: %v", err)
		}
	})
	t.Run("starttls", func(t *testing.T) {
		c, err := imapclient.DialStartTLS(e.addr, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		caps, err := c.Capability().Wait()
		if err != nil {
			t.Fatal(err)
		}
		if caps.Has(goimap.CapStartTLS) || caps.Has(goimap.CapLoginDisabled) || !caps.Has("AUTH=PLAIN") {
			t.Errorf("caps after STARTTLS: %v", caps)
		}
		if err := c.Login(testUser, testPass).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("implicit tls authenticate plain", func(t *testing.T) {
		c, err := imapclient.DialTLS(e.tlsAdr, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Authenticate(gosasl.NewPlainClient("", testUser, testPass)); err != nil {
			t.Fatal(err)
		}
		if err := c.Authenticate(gosasl.NewPlainClient("", testUser, testPass)); err == nil {
			t.Error("second AUTHENTICATE accepted")
		}
		caps, err := c.Capability().Wait()
		if err != nil || !caps.Has(goimap.CapQuota) {
			t.Errorf("caps after AUTHENTICATE: %v %v", caps, err)
		}
	})
	t.Run("tls 1.1 refused", func(t *testing.T) {
		cfg := clientTLS()
		cfg.MaxVersion = tls.VersionTLS11
		if c, err := imapclient.DialTLS(e.tlsAdr, &imapclient.Options{TLSConfig: cfg}); err == nil {
			if _, err := c.Capability().Wait(); err == nil {
				t.Error("TLS 1.1 accepted")
			}
			c.Close()
		}
	})
	t.Run("plaintext pipelined behind STARTTLS is dropped", func(t *testing.T) {
		r := e.raw(t)
		r.send("S1 STARTTLS\r\nX1 LOGIN " + testUser + " " + testPass + "\r\n")
		if l := r.line(); !strings.HasPrefix(l, "S1 OK") {
			t.Fatalf("STARTTLS: %q", l)
		}
		tc := tls.Client(r.c, clientTLS())
		if err := tc.Handshake(); err != nil {
			// The injected bytes were dropped; a handshake error
			// would mean they reached TLS.
			t.Fatalf("handshake after injection: %v", err)
		}
		tc.Write([]byte("N1 NOOP\r\n"))
		buf := make([]byte, 512)
		n, _ := tc.Read(buf)
		if got := string(buf[:n]); !strings.HasPrefix(got, "N1 OK") {
			t.Errorf("after STARTTLS: %q (the pipelined LOGIN must not run)", got)
		}
		tc.Close()
	})
}

func TestAuthenticate(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name string
		mech gosasl.Client
		code goimap.ResponseCode
	}{
		{"plain", gosasl.NewPlainClient("", testUser, testPass), ""},
		{"plain wrong", gosasl.NewPlainClient("", testUser, "nope"), goimap.ResponseCodeAuthenticationFailed},
		{"plain other identity", gosasl.NewPlainClient("bob@example.org", testUser, testPass), goimap.ResponseCodeClientBug},
		{"login", gosasl.NewLoginClient(testUser, testPass), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial(t, nil)
			err := c.Authenticate(tc.mech)
			if imapCode(err) != tc.code || (tc.code == "") != (err == nil) {
				t.Fatalf("authenticate: %v, want code %q", err, tc.code)
			}
		})
	}
	t.Run("cancel", func(t *testing.T) {
		r := e.raw(t)
		r.send("A1 AUTHENTICATE PLAIN\r\n")
		if l := r.line(); !strings.HasPrefix(l, "+") {
			t.Fatalf("no continuation: %q", l)
		}
		r.send("*\r\n")
		if l := r.line(); !strings.HasPrefix(l, "A1 BAD") {
			t.Fatalf("cancel: %q", l)
		}
		r.send("A2 NOOP\r\n")
		if l := r.line(); !strings.HasPrefix(l, "A2 OK") {
			t.Fatalf("after cancel: %q", l)
		}
	})
}

// TestLoginService: failures slow the account down but never lock it, a
// directory outage is not counted against it, and no room to verify is
// NO [UNAVAILABLE], for LOGIN and AUTHENTICATE alike.
func TestLoginService(t *testing.T) {
	t.Run("no lockout", func(t *testing.T) {
		logins, err := login.New(login.Config{DummyScheme: "SSHA", PenaltyBase: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, func(s *Server) { s.Logins = logins })
		for i := range 10 {
			c := e.dial(t, nil)
			if err := c.Login(testUser, "wrong").Wait(); imapCode(err) != goimap.ResponseCodeAuthenticationFailed {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
		// Slowed, never locked: the right password still works.
		c := e.dial(t, nil)
		if err := c.Login(testUser, testPass).Wait(); err != nil {
			t.Fatalf("after ten failures: %v", err)
		}
		// A directory outage is temporary, and not the client's failure.
		e.dir.setDown(true)
		c = e.dial(t, nil)
		if err := c.Login("bob@example.org", "x").Wait(); imapCode(err) != goimap.ResponseCodeUnavailable {
			t.Fatalf("directory down: %v", err)
		}
		if st := logins.Stats(); st.Failed != 10 || st.OK != 1 || st.Unavailable != 1 || st.Penalties == 0 {
			t.Fatalf("login service saw %+v", st)
		}
	})
	t.Run("no room to verify", func(t *testing.T) {
		e := newEnv(t, func(s *Server) { s.Logins = logintest.Saturated(t) })
		c := e.dial(t, nil)
		err := c.Login(testUser, "wrong").Wait()
		if imapCode(err) != goimap.ResponseCodeUnavailable {
			t.Fatalf("LOGIN: %v, want NO [UNAVAILABLE]", err)
		}
		c = e.dial(t, nil)
		err = c.Authenticate(gosasl.NewPlainClient("", "nobody@example.org", "wrong"))
		if imapCode(err) != goimap.ResponseCodeUnavailable {
			t.Fatalf("AUTHENTICATE PLAIN: %v, want NO [UNAVAILABLE]", err)
		}
	})
}
