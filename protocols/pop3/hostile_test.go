package pop3

import (
	"fmt"
	"strings"
	"testing"
)

// TestHostileInput sends malformed and hostile lines; each gets a precise
// -ERR and the session goes on (or, where stated, is closed on purpose).
func TestHostileInput(t *testing.T) {
	tenKB := strings.Repeat("A", 10*1024)
	tests := []struct {
		name   string
		login  bool   // send after logging in
		send   string // raw bytes
		want   string // exact reply line
		closed bool   // the server hangs up after replying
	}{
		{"NUL alone", false, "\x00\r\n", "-ERR NUL octet in command", false},
		{"NUL in keyword", false, "US\x00ER bob\r\n", "-ERR NUL octet in command", false},
		{"NUL in argument", true, "LIST 1\x00\r\n", "-ERR NUL octet in command", false},
		{"bare LF", false, "CAPA\n", "-ERR line must end with CRLF", false},
		{"bare LF after login", true, "STAT\n", "-ERR line must end with CRLF", false},
		{"CR inside line", false, "NOOP\rQUIT\r\n", "-ERR CR inside command line", false},
		{"CR CR LF", false, "CAPA\r\r\n", "-ERR CR inside command line", false},
		{"empty line", false, "\r\n", "-ERR empty command", false},
		{"leading space", false, " CAPA\r\n", "-ERR empty command", false},
		{"256-octet line", false, "USER " + strings.Repeat("u", 249) + "\r\n", "-ERR line too long (commands: at most 255 octets with CRLF)", false},
		{"255-octet line is fine", false, "USER " + strings.Repeat("u", 248) + "\r\n", "+OK send PASS", false},
		{"10 KB USER", false, "USER " + tenKB + "\r\n", "-ERR line too long (commands: at most 255 octets with CRLF)", false},
		{"10 KB PASS", false, "PASS " + tenKB + "\r\n", "-ERR line too long (commands: at most 255 octets with CRLF)", false},
		{"10 KB AUTH initial response", false, "AUTH PLAIN " + tenKB + "\r\n", "-ERR line too long (commands: at most 255 octets with CRLF)", false},
		{"10 KB RETR argument", true, "RETR " + tenKB + "\r\n", "-ERR line too long (commands: at most 255 octets with CRLF)", false},
		{"100 KB without newline", false, strings.Repeat("B", 100*1024), "-ERR line far too long, closing connection", true},
		{"unknown command", false, "XYZZY\r\n", "-ERR unknown command", false},
		{"8-bit keyword", false, "\xff\xfe\r\n", "-ERR unknown command", false},
		{"telnet IAC", false, "\xff\xf4\xff\xfd\x06\r\n", "-ERR unknown command", false},
		{"HTTP request", false, "GET / HTTP/1.1\r\n", "-ERR unknown command", false},
		{"TRANSACTION command before login", false, "RETR 1\r\n", "-ERR RETR is only valid after login", false},
		{"TOP before login", false, "TOP 1 1\r\n", "-ERR TOP is only valid after login", false},
		{"RETR extra argument", true, "RETR 1 2\r\n", "-ERR usage: RETR message-number", false},
		{"DELE without argument", true, "DELE\r\n", "-ERR usage: DELE message-number", false},
		{"DELE zero", true, "DELE 0\r\n", "-ERR no such message, only 1 messages in maildrop", false},
		{"DELE hex", true, "DELE 0x1\r\n", "-ERR invalid message number", false},
		{"DELE 8-bit", true, "DELE \xd9\xa1\r\n", "-ERR invalid message number", false},
		{"TOP negative lines", true, "TOP 1 -1\r\n", "-ERR invalid number of lines", false},
		{"TOP huge lines", true, "TOP 1 99999999999999999999999\r\n", "+OK top of message follows", false},
		{"UIDL out of range", true, "UIDL 2\r\n", "-ERR no such message, only 1 messages in maildrop", false},
		{"STAT with argument", true, "STAT 1\r\n", "-ERR this command takes no arguments", false},
		{"AUTH bad mechanism name", false, "AUTH \xff\r\n", "-ERR unsupported SASL mechanism", false},
		{"AUTH bad base64", false, "AUTH PLAIN ====\r\n", "-ERR invalid base64 in initial response", false},
	}
	b := newMemBackend()
	b.add("bob", "pw", msg1)
	addr := insecureServer(t, b)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr)
			if tt.login {
				c.login("bob", "pw")
			}
			if _, err := fmt.Fprint(c.conn, tt.send); err != nil {
				t.Fatal(err)
			}
			if got := c.line(); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if tt.closed {
				c.expectClosed()
				return
			}
			if strings.HasPrefix(tt.want, "+OK top") {
				c.raw()
			}
			// The session is still there and in the same state.
			c.must("CAPA", "+OK capability list follows")
			c.lines()
			if tt.login {
				c.must("STAT", "+OK 1 ")
			}
			c.must("QUIT", "+OK")
			c.expectClosed()
		})
	}
}
