package smtp

import (
	"strings"
	"testing"

	"github.com/vmaild/vmaild/protocols/gate"
)

// Each case runs on a fresh, greeted connection: send the lines, the last
// reply must start with want, and unless the case says the connection
// closes, NOOP must still work afterwards. Every case ends with a fresh
// connection to prove the server lives on.
func TestHostileCommands(t *testing.T) {
	type step struct{ send, want string }
	tests := []struct {
		name   string
		tls    bool // STARTTLS first
		steps  []step
		closes bool
	}{
		{name: "NUL inside a command", steps: []step{{"NO\x00P", "500 5.5.2"}}},
		{name: "NUL inside an address", steps: []step{{"MAIL FROM:<a\x00b@remote.test>", "553 5.1.7"}}},
		{name: "NUL after an address", steps: []step{{"MAIL FROM:<ab@remote.test>\x00", "500 5.5.4"}}},
		{name: "NUL in a recipient", steps: []step{{"MAIL FROM:<>", "250 "}, {"RCPT TO:<alice\x00@example.org>", "553 5.1.3"}}},
		{name: "control character in greeting", steps: []step{{"EHLO a\x01b", "250 "}}},
		{name: "bare LF ends a command", steps: []step{{"NOOP\nRSET\r\n", "250 "}}},
		{name: "10 KB line", steps: []step{{strings.Repeat("A", 10<<10), "500 5.4.0"}}, closes: true},
		{name: "10 KB address", steps: []step{{"MAIL FROM:<" + strings.Repeat("a", 10<<10) + "@remote.test>", "500 5.4.0"}}, closes: true},
		{name: "1 KB address", steps: []step{{"MAIL FROM:<" + strings.Repeat("a", 1<<10) + "@remote.test>", "553 5.1.7"}}},
		{name: "RCPT before MAIL", steps: []step{{"RCPT TO:<alice@example.org>", "502 5.5.1"}}},
		{name: "DATA before MAIL", steps: []step{{"DATA", "502 5.5.1"}}},
		{name: "DATA before RCPT", steps: []step{{"MAIL FROM:<>", "250 "}, {"DATA", "502 5.5.1"}}},
		{name: "DATA with an argument", steps: []step{{"MAIL FROM:<>", "250 "}, {"RCPT TO:<alice@example.org>", "250 "}, {"DATA now", "501 5.5.4"}}},
		{name: "second MAIL without RSET", steps: []step{{"MAIL FROM:<a@remote.test>", "250 "}, {"RCPT TO:<alice@example.org>", "250 "}, {"MAIL FROM:<b@remote.test>", "503 5.5.1"}}},
		{name: "MAIL after RSET", steps: []step{{"MAIL FROM:<a@remote.test>", "250 "}, {"RSET", "250 "}, {"MAIL FROM:<b@remote.test>", "250 "}}},
		{name: "VRFY", steps: []step{{"VRFY alice", "252 2.5.0"}}},
		{name: "HELO without domain", steps: []step{{"HELO", "501 5.5.2"}}},
		{name: "huge SIZE", steps: []step{{"MAIL FROM:<a@remote.test> SIZE=18446744073709551616", "501 5.5.4"}}},
		{name: "SIZE over the limit", steps: []step{{"MAIL FROM:<a@remote.test> SIZE=2000000", "552 5.3.4"}}},
		{name: "unknown MAIL parameter", steps: []step{{"MAIL FROM:<a@remote.test> X-EVIL=1", "500 5.5.4"}}},
		{name: "unknown RCPT parameter", steps: []step{{"MAIL FROM:<>", "250 "}, {"RCPT TO:<alice@example.org> NOTIFY=NEVER", "504 5.5.4"}}},
		{name: "BDAT without size", steps: []step{{"BDAT", "501 5.5.4"}}},
		{name: "BDAT negative size", steps: []step{{"BDAT -1", "501 5.5.4"}}},
		{name: "BDAT non-numeric size", steps: []step{{"BDAT abc LAST", "501 5.5.4"}}},
		{name: "BDAT size beyond 32 bits", steps: []step{{"BDAT 99999999999 LAST", "501 5.5.4"}}},
		{name: "BDAT bad keyword", steps: []step{{"BDAT 5 FIRST", "501 5.5.4"}}},
		{name: "BDAT too many arguments", steps: []step{{"BDAT 5 LAST more", "501 5.5.4"}}},
		{name: "BDAT before RCPT discards its chunk", steps: []step{{"BDAT 6 LAST\r\nQUIT\r\n", "502 5.5.1"}}},
		// go-smtp discards a refused chunk through its line-length limit, so
		// this works only for a chunk of short lines; one with a longer
		// line closes the connection after the 552.
		{name: "BDAT over the size limit discards its chunk", steps: []step{
			{"MAIL FROM:<>", "250 "}, {"RCPT TO:<alice@example.org>", "250 "},
			{"BDAT 1048577 LAST\r\n" + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 10486)[:1048577], "552 5.3.4"}}},
		{name: "BDAT after a DATA transaction", steps: []step{
			{"MAIL FROM:<>", "250 "}, {"RCPT TO:<alice@example.org>", "250 "}, {"DATA", "354"},
			{"Subject: x\r\n\r\nbody\r\n.\r\n", "250 2.0.0"},
			{"BDAT 6 LAST\r\nQUIT\r\n", "502 5.5.1"}}},
		{name: "DATA during BDAT", steps: []step{
			{"MAIL FROM:<>", "250 "}, {"RCPT TO:<alice@example.org>", "250 "},
			{"BDAT 12\r\nSubject: x\r\n", "250 2.0.0"}, {"DATA", "502 5.5.1"},
			{"BDAT 8 LAST\r\n\r\nbody\r\n", "250 2.0.0"}}},
		{name: "MAIL during BDAT", steps: []step{
			{"MAIL FROM:<>", "250 "}, {"RCPT TO:<alice@example.org>", "250 "},
			{"BDAT 12\r\nSubject: x\r\n", "250 2.0.0"}, {"MAIL FROM:<>", "502 5.5.1"},
			{"RSET", "250 "}}},
		{name: "STARTTLS twice", tls: true, steps: []step{{"STARTTLS", "502 5.5.1"}}},
		{name: "AUTH before STARTTLS", steps: []step{{"AUTH PLAIN " + plainIR("alice@example.org", "secret-alice"), "538 5.7.11"}}},
		{name: "AUTH twice", tls: true, steps: []step{
			{"AUTH PLAIN " + plainIR("alice@example.org", "secret-alice"), "235 2.0.0"},
			{"AUTH PLAIN " + plainIR("alice@example.org", "secret-alice"), "503 5.5.1"}}},
		{name: "AUTH inside a transaction", tls: true, steps: []step{
			{"MAIL FROM:<a@remote.test>", "250 "},
			{"AUTH PLAIN " + plainIR("alice@example.org", "secret-alice"), "503 5.5.1"}}},
		{name: "AUTH unknown mechanism", tls: true, steps: []step{{"AUTH CRAM-MD5", "504 5.5.4"}}},
		{name: "AUTH bad base64", tls: true, steps: []step{{"AUTH PLAIN !!!", "454 4.7.0"}}},
		{name: "AUTH PLAIN with three NULs", tls: true, steps: []step{{"AUTH PLAIN AGEAYgBj", "501 5.5.2"}}},
		{name: "AUTH cancelled", tls: true, steps: []step{{"AUTH LOGIN", "334 "}, {"*", "501 5.0.0"}}},
		{name: "four unknown commands", steps: []step{{"XYZA", "500 5.5.2"}, {"XYZB", "500 5.5.2"}, {"XYZC", "500 5.5.2"}, {"XYZD", "500 5.5.2"}}, closes: true},
	}
	e := startServer(t, RoleMTA, false, func(s *Server) { s.MaxMessageBytes = 1 << 20 })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, e.addr)
			c.must("EHLO client.test", "250 ")
			if tt.tls {
				c.startTLS(e.tls)
				c.must("EHLO client.test", "250 ")
			}
			for _, s := range tt.steps {
				if strings.Contains(s.send, "\r\n") {
					// A command with its chunk or message: sent as is.
					c.send(s.send)
					c.expect(s.want)
				} else {
					c.must(s.send, s.want)
				}
			}
			if tt.closes {
				for {
					r, ok := c.readReply()
					if !ok {
						break
					}
					t.Logf("before closing: %v", r)
				}
				if !c.closed() {
					t.Error("connection still open")
				}
			} else {
				c.must("NOOP", "250 ")
			}
			c2 := dialRaw(t, e.addr)
			c2.must("EHLO again.test", "250 ")
		})
	}
}

func TestGreetingWithNUL(t *testing.T) {
	e := startServer(t, RoleMTA, false)
	c := dialRaw(t, e.addr)
	c.must("EHLO a\x00b", "501 5.5.2")
	c.must("MAIL FROM:<>", "502 5.5.1")
	c.must("EHLO client.test", "250 ")
	c.must("MAIL FROM:<>", "250 ")
}

// Recipients refused one after another (a directory harvest) end the
// connection with 421 after MaxErrors.
func TestErrorCapClosesConnection(t *testing.T) {
	e := startServer(t, RoleMTA, false, func(s *Server) { s.MaxErrors = 5 })
	c := dialRaw(t, e.addr)
	c.must("EHLO client.test", "250 ")
	c.must("MAIL FROM:<someone@remote.test>", "250 ")
	for i := 0; i < 4; i++ {
		c.must("RCPT TO:<nobody@example.org>", "550 5.1.1")
	}
	c.must("RCPT TO:<nobody@example.org>", "421 4.7.0")
	if !c.closed() {
		t.Fatal("connection still open after 421")
	}
	dialRaw(t, e.addr).must("EHLO client.test", "250 ")
}

// STARTTLS must not execute commands pipelined behind it in plaintext
// (CVE-2011-0411 class).
func TestSTARTTLSInjection(t *testing.T) {
	e := startServer(t, RoleMTA, false)
	c := dialRaw(t, e.addr)
	c.must("EHLO client.test", "250 ")
	c.send("STARTTLS\r\nMAIL FROM:<injected@remote.test>\r\n")
	c.expect("220 2.0.0")
	tc := tlsClient(t, c, e)
	tc.must("EHLO client.test", "250 ")
	tc.must("RCPT TO:<alice@example.org>", "502 5.5.1")
}

func TestIdleTimeout(t *testing.T) {
	e := startServer(t, RoleMTA, false, func(s *Server) { s.ReadTimeout = 100e6 })
	c := dialRaw(t, e.addr)
	c.expect("421 4.4.2")
	if !c.closed() {
		t.Fatal("connection open after idle timeout")
	}
}

func TestConnectionsPerIP(t *testing.T) {
	e := startServer(t, RoleMTA, false, func(s *Server) { s.Gate = &gate.Gate{Limits: gate.Config{MaxPerNetwork: 2}} })
	a := dialRaw(t, e.addr)
	dialRaw(t, e.addr)
	c := dialRawNoGreeting(t, e.addr)
	c.expect("421 4.7.0")
	if !c.closed() {
		t.Fatal("third connection kept open")
	}
	a.must("QUIT", "221 ")
	a.closed()
	// The slot is free again once the server has seen the close.
	for i := 0; ; i++ {
		c := dialRawNoGreeting(t, e.addr)
		r, ok := c.readReply()
		if ok && r.code == 220 {
			break
		}
		if i > 1000 {
			t.Fatalf("no slot after QUIT: %v", r)
		}
	}
}
