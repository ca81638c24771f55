package smtp

import (
	"fmt"
	"strings"
	"testing"
)

// SMTP smuggling (2023): a body holding an end-of-data sequence other than
// CRLF.CRLF, followed by a second transaction, must never become two
// messages here, and is refused so that it cannot become two messages at a
// lenient next hop either.
func TestSmuggling(t *testing.T) {
	const smuggled = "MAIL FROM:<admin@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n" +
		"From: admin@example.org\r\nSubject: smuggled\r\n\r\nevil\r\n"
	ends := []struct{ name, end string }{
		{"LF.LF", "\n.\n"},
		{"CR.LF", "\r.\n"},
		{"LF.CRLF", "\n.\r\n"},
		{"CRLF.LF", "\r\n.\n"},
		{"CR.CRLF", "\r.\r\n"},
		{"CRLF.CR", "\r\n.\r"},
		{"LF.CR", "\n.\r"},
		{"bare CR at end of line", "\r"},
	}
	for _, ee := range ends {
		t.Run("DATA/"+ee.name, func(t *testing.T) {
			e := startServer(t, RoleMTA, false)
			c := dialRaw(t, e.addr)
			c.must("EHLO client.test", "250 ")
			c.must("MAIL FROM:<someone@remote.test>", "250 ")
			c.must("RCPT TO:<alice@example.org>", "250 ")
			c.must("DATA", "354")
			c.send("Subject: innocent\r\n\r\nhello" + ee.end + smuggled + ".\r\n")
			if ee.name == "CRLF.CR" {
				// go-smtp's dot-unstuffing drops a "." and CR that start a
				// line, leaving clean CRLF lines: one message, whose body
				// holds the would-be commands as text.
				c.expect("250 2.0.0")
				c.must("NOOP", "250 2.0.0")
				got := e.agent.all()
				if len(got) != 1 || len(got[0].rcpts) != 1 || !strings.Contains(got[0].data, "hello\r\nMAIL FROM:<admin@") {
					t.Fatalf("deliveries %+v", got)
				}
				return
			}
			c.expect("554 5.5.2")
			// The smuggled commands were message data: the next reply is
			// the NOOP's, and nothing was delivered.
			c.must("NOOP", "250 2.0.0")
			if got := e.agent.all(); len(got) != 0 {
				t.Fatalf("%d messages delivered: %+v", len(got), got)
			}
		})
		t.Run("BDAT/"+ee.name, func(t *testing.T) {
			e := startServer(t, RoleMTA, false)
			c := dialRaw(t, e.addr)
			c.must("EHLO client.test", "250 ")
			c.must("MAIL FROM:<someone@remote.test>", "250 ")
			c.must("RCPT TO:<alice@example.org>", "250 ")
			chunk := "Subject: innocent\r\n\r\nhello" + ee.end + smuggled + ".\r\n"
			c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk), chunk))
			c.expect("554 5.5.2")
			c.must("NOOP", "250 2.0.0")
			if got := e.agent.all(); len(got) != 0 {
				t.Fatalf("%d messages delivered", len(got))
			}
		})
	}
	// The same words with proper CRLF line ends and dot-stuffing are one
	// ordinary message.
	t.Run("dot-stuffed, delivered once", func(t *testing.T) {
		e := startServer(t, RoleMTA, false)
		c := dialRaw(t, e.addr)
		c.must("EHLO client.test", "250 ")
		c.must("MAIL FROM:<someone@remote.test>", "250 ")
		c.must("RCPT TO:<alice@example.org>", "250 ")
		c.must("DATA", "354")
		c.send("Subject: innocent\r\n\r\nhello\r\n..\r\n" + smuggled + ".\r\n")
		c.expect("250 2.0.0")
		c.must("NOOP", "250 2.0.0")
		got := e.agent.all()
		if len(got) != 1 {
			t.Fatalf("%d messages delivered", len(got))
		}
		if !strings.Contains(got[0].data, "hello\r\n.\r\nMAIL FROM:") || len(got[0].rcpts) != 1 {
			t.Errorf("message %q to %v", got[0].data, got[0].rcpts)
		}
	})
	// A BDAT message split so that a chunk ends in CR and the next starts
	// with LF is fine: line ends are checked across chunks.
	t.Run("CRLF split across BDAT chunks", func(t *testing.T) {
		e := startServer(t, RoleMTA, false)
		c := dialRaw(t, e.addr)
		c.must("EHLO client.test", "250 ")
		c.must("MAIL FROM:<someone@remote.test>", "250 ")
		c.must("RCPT TO:<alice@example.org>", "250 ")
		c.send("BDAT 21\r\nSubject: split\r\n\r\nhi\r")
		c.expect("250 2.0.0")
		c.send("BDAT 1 LAST\r\n\n")
		c.expect("250 2.0.0")
		if got := e.agent.all(); len(got) != 1 || !strings.HasSuffix(got[0].data, "Subject: split\r\n\r\nhi\r\n") {
			t.Fatalf("deliveries %+v", got)
		}
	})
}
