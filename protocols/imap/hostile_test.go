package imap

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	goimap "github.com/emersion/go-imap/v2"
)

// TestHostileInput sends malformed and hostile input over a raw socket and
// checks the exact answer and that the connection (or, where it must
// close, the server) goes on serving.
func TestHostileInput(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("x", DefaultMaxLineLength+10)
	tests := []struct {
		name    string
		login   bool   // log in first
		select_ bool   // and select INBOX
		send    string // the hostile input
		extra   string // sent after the first answer line (literal data)
		want    string // prefix of the answer line sought
		closes  bool   // the server closes the connection afterwards
	}{
		{name: "empty line", send: "\r\n", want: "* BAD [CLIENTBUG] Empty command line"},
		{name: "tag only", send: "A1\r\n", want: "A1 BAD [CLIENTBUG] Missing or invalid command name"},
		{name: "invalid tag", send: "A*1 NOOP\r\n", want: "* BAD [CLIENTBUG] Missing or invalid command tag"},
		{name: "plus tag", send: "+ NOOP\r\n", want: "* BAD [CLIENTBUG] Missing or invalid command tag"},
		{name: "bare UID", login: true, send: "A1 UID\r\n", want: "A1 BAD [CLIENTBUG] Missing or invalid command name"},
		{name: "NUL in command", send: "A1 NO\x00OP\r\n", want: "A1 BAD [CLIENTBUG] NUL octet in command"},
		{name: "NUL in argument", send: "A1 LOGIN a\x00b c\r\n", want: "A1 BAD [CLIENTBUG] NUL octet in command"},
		{name: "overlong line", send: "A1 NOOP " + long + "\r\n", want: "A1 BAD [TOOBIG] Command line too long"},
		{name: "overlong line announcing a literal", send: "A1 LOGIN " + long + " {5+}\r\nhello\r\n", want: "A1 BAD [TOOBIG] Command line too long"},
		{name: "huge sync literal", send: "A1 LOGIN {999999999}\r\n", want: "A1 NO [TOOBIG] Literal of 999999999 octets exceeds the 4096-octet limit of LOGIN"},
		{name: "absurd literal", send: "A1 LOGIN {99999999999999999999999}\r\n", want: "A1 NO [TOOBIG]"},
		{name: "big non-sync literal is skipped", send: "A1 LOGIN {5000+}\r\n" + strings.Repeat("y", 5000) + " x\r\n", want: "A1 NO [TOOBIG]"},
		{name: "huge non-sync literal closes", send: "A1 LOGIN {999999999+}\r\n", want: "A1 NO [TOOBIG]", closes: true},
		{name: "bad literal syntax", send: "A1 LOGIN {abc}\r\n", want: "A1 BAD [CLIENTBUG] Syntax error"},
		{name: "negative literal", send: "A1 LOGIN {-5}\r\n", want: "A1 BAD [CLIENTBUG] Syntax error"},
		{name: "APPEND over APPENDLIMIT", login: true, send: "A1 APPEND INBOX {999999999}\r\n", want: "A1 NO [TOOBIG] Message of 999999999 octets exceeds the APPENDLIMIT"},
		{name: "APPEND bad flag after + is drained", login: true, send: "A1 APPEND INBOX (\\Bad%flag) {5000}\r\n", extra: strings.Repeat("m", 5000) + "\r\n", want: "A1 BAD"},
		{name: "SELECT before login", send: "A1 SELECT INBOX\r\n", want: "A1 BAD [CLIENTBUG] This command is only valid in the authenticated state"},
		{name: "GETQUOTAROOT before login", send: "A1 GETQUOTAROOT INBOX\r\n", want: "A1 BAD [CLIENTBUG] This command is only valid in the authenticated state"},
		{name: "FETCH without selection", login: true, send: "A1 FETCH 1 FLAGS\r\n", want: "A1 BAD [CLIENTBUG] This command is only valid in the selected state"},
		{name: "LOGIN twice", login: true, send: "A1 LOGIN a b\r\n", want: "A1 BAD [CLIENTBUG] This command is only valid in the not authenticated state"},
		{name: "STARTTLS without TLS", send: "A1 STARTTLS\r\n", want: "A1 NO STARTTLS is not available"},
		{name: "SETQUOTA", login: true, send: "A1 SETQUOTA \"\" (STORAGE 1)\r\n", want: "A1 NO [NOPERM]"},
		{name: "unknown command after login", login: true, send: "A1 FROBNICATE\r\n", want: "A1 BAD Unknown command"},
		{name: "unknown command before login", send: "GET / HTTP/1.1\r\n", want: "GET BAD Unknown command", closes: true},
		{name: "sequence number out of range", login: true, select_: true, send: "A1 FETCH 7 FLAGS\r\n", want: "A1 BAD [CLIENTBUG] Invalid message sequence number"},
		// go-imap's parser reports this overflow as its own failure.
		{name: "huge sequence number", login: true, select_: true, send: "A1 FETCH 99999999999 FLAGS\r\n", want: "A1 NO [SERVERBUG]"},
		{name: "deep nesting", login: true, select_: true, send: "A1 SEARCH " + strings.Repeat("(", 2000) + "\r\n", want: "A1 "},
		{name: "IDLE ended by garbage", login: true, select_: true, send: "A1 IDLE\r\n", extra: "NOT-DONE\r\n", want: "A1 BAD [CLIENTBUG] Syntax error: expected DONE"},
		{name: "AUTHENTICATE with an overlong response", send: "A1 AUTHENTICATE PLAIN\r\n", extra: strings.Repeat("Q", 60000) + "\r\n", want: "A1 BAD AUTHENTICATE cancelled"},
		{name: "bare LF line ends", send: "A1 NOOP\n", want: "A1 OK"},
		// Command smuggling: bytes the front takes for data or for the
		// rest of a line must never become a command for go-imap. Each
		// case ends with a LOGOUT go-imap would run if smuggled: the
		// connection staying open shows that it did not.
		{name: "literal after a syntax error", send: "A1 NOOP x{11}\r\n", extra: "A2 LOGOUT\r\n\r\n", want: "A1 BAD [CLIENTBUG] Syntax error"},
		{name: "non-sync literal after a syntax error", send: "A1 NOOP x{11+}\r\nA2 LOGOUT\r\n\r\n", want: "A1 BAD [CLIENTBUG] Syntax error"},
		{name: "literal after a syntax error, logged in", login: true, send: "A1 SELECT INBOX x{11+}\r\nA2 LOGOUT\r\n\r\n", want: "A1 BAD [CLIENTBUG] Syntax error"},
		{name: "quoted string across CRLF", send: "A1 LOGIN \"a\r\nA2 NOOP\r\n\" b\r\n", want: "A1 BAD [CLIENTBUG] Quoted string not closed at the end of the line"},
		{name: "quoted string hiding a literal", send: "A1 LOGIN \"a {11+}\r\nA2 LOGOUT\r\n\r\n", want: "A1 BAD [CLIENTBUG] Quoted string not closed at the end of the line"},
		{name: "escaped quote keeps the string open", send: "A1 LOGIN \"a\\\" {11+}\r\nA2 LOGOUT\r\n\r\n", want: "A1 BAD [CLIENTBUG] Quoted string not closed"},
		{name: "CR inside a line", send: "A1 NOOP x\rA2 LOGOUT\r\n", want: "A1 BAD [CLIENTBUG] CR without LF in command"},
		{name: "CR inside a quoted string", send: "A1 NOOP \"\rA2 LOGOUT\"\r\n", want: "A1 BAD [CLIENTBUG] CR without LF in command"},
		{name: "name running into 8-bit", send: "A1 LOGOUT\xe9\r\n", want: "A1 BAD [CLIENTBUG] Missing or invalid command name"},
		{name: "space after a literal announcement", send: "A1 SELECT {5} \r\n", extra: "INBOX\r\n", want: "A1 BAD [CLIENTBUG] This command is only valid in the authenticated state"},
		{name: "second APPEND message", login: true, send: "A1 APPEND INBOX {5+}\r\nhello {11+}\r\nA2 LOGOUT\r\n\r\n", want: "A1 BAD [CLIENTBUG] Only one message per APPEND"},
		{name: "data after the APPEND message", login: true, send: "A1 APPEND INBOX {5+}\r\nhello) x\r\n", want: "A1 BAD [CLIENTBUG] Only one message per APPEND"},
		{name: "second streamed APPEND message", login: true, send: "A1 APPEND INBOX {5000+}\r\n" + strings.Repeat("m", 5000) + " {11+}\r\nA2 LOGOUT\r\n\r\n", want: "A1 OK [APPENDUID"},
		{name: "large APPEND mailbox literal", login: true, send: "A1 APPEND {5000+}\r\n" + strings.Repeat("m", 4990) + "\r\nA2 LOGOUT\r\n (\\Seen) {1+}\r\nx\r\n", want: "A1 NO [TOOBIG] Literal of 5000 octets exceeds the 4096-octet limit of APPEND"},
		{name: "long tag", send: strings.Repeat("t", 300) + " NOOP x\r\n", want: strings.Repeat("t", 300) + " BAD [CLIENTBUG] Syntax error"},
		{name: "AUTHENTICATE response longer than go-imap reads", send: "A1 AUTHENTICATE PLAIN\r\n", extra: strings.Repeat("Q", 5000) + "\rA2 LOGOUT\r\n", want: "A1 BAD AUTHENTICATE cancelled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.raw(t)
			if tc.login {
				r.login()
			}
			if tc.select_ {
				r.send("S1 SELECT INBOX\r\n")
				r.until("S1 OK")
			}
			r.send(tc.send)
			if tc.extra != "" {
				if l := r.line(); !strings.HasPrefix(l, "+") {
					t.Fatalf("expected a continuation request, got %q", l)
				}
				r.send(tc.extra)
			}
			var got string
			for {
				got = r.line()
				if strings.HasPrefix(got, tc.want) {
					break
				}
				if !strings.HasPrefix(got, "*") {
					t.Fatalf("answer %q, want prefix %q", got, tc.want)
				}
			}
			if tc.closes {
				if !r.closed() {
					t.Fatal("connection stays open")
				}
				r2 := e.raw(t)
				r2.send("Z1 NOOP\r\n")
				if l := r2.line(); !strings.HasPrefix(l, "Z1 OK") {
					t.Fatalf("server after close: %q", l)
				}
				return
			}
			r.send("Z1 NOOP\r\n")
			if l := r.until("Z1 "); !strings.HasPrefix(l[len(l)-1], "Z1 OK") {
				t.Fatalf("after hostile input: %q", l)
			}
		})
	}
}

// TestByteExact stores 8-bit and dot-leading content by APPEND and by
// delivery and reads it back unchanged.
func TestByteExact(t *testing.T) {
	e := newEnv(t)
	c := e.login(t, nil)
	bodies := []string{
		msg1,
		"Subject: lf only\n\n.\n..\n. \nline\n",
		"Subject: latin1 and no final newline\r\n\r\n\xe9t\xe9 \xff\xfe\r\n.\r\nend",
		"Subject: utf8\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n日本語 😀\r\n.\r\n",
	}
	for _, b := range bodies {
		if _, err := appendMsg(t, c, "INBOX", b, nil); err != nil {
			t.Fatal(err)
		}
		e.deliver(t, "", b)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(goimap.SeqSet{{Start: 1, Stop: 0}}, &goimap.FetchOptions{
		RFC822Size:  true,
		BodySection: []*goimap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2*len(bodies) {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, m := range msgs {
		want := bodies[i/2]
		if got := m.BodySection[0].Bytes; !bytes.Equal(got, []byte(want)) || m.RFC822Size != int64(len(want)) {
			t.Errorf("message %d: %q (size %d), want %q", i+1, got, m.RFC822Size, want)
		}
	}
	// Partial fetches land on exact octets, also past the end.
	for _, p := range []goimap.SectionPartial{{Offset: 0, Size: 4}, {Offset: 100, Size: 10}, {Offset: 100000, Size: 10}} {
		p := p
		msgs, err := c.Fetch(goimap.SeqSetNum(1), &goimap.FetchOptions{BodySection: []*goimap.FetchItemBodySection{{Peek: true, Partial: &p}}}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		end := min(int(p.Offset+p.Size), len(msg1))
		start := min(int(p.Offset), len(msg1))
		if got := string(msgs[0].BodySection[0].Bytes); got != msg1[start:end] {
			t.Errorf("partial %v: %q, want %q", p, got, msg1[start:end])
		}
	}
}

// TestLiterals drives literals the way clients send them.
func TestLiterals(t *testing.T) {
	e := newEnv(t)
	r := e.raw(t)
	user := fmt.Sprintf("{%d}", len(testUser))
	r.send("A1 LOGIN " + user + "\r\n")
	if l := r.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("sync literal: %q", l)
	}
	r.send(testUser + fmt.Sprintf(" {%d+}\r\n%s\r\n", len(testPass), testPass))
	if l := r.until("A1 "); !strings.HasPrefix(l[len(l)-1], "A1 OK [CAPABILITY") || !strings.Contains(l[len(l)-1], " QUOTA") {
		t.Fatalf("login with literals: %q", l)
	}
	body := "Subject: streamed\r\n\r\n" + strings.Repeat("0123456789abcdef", 1024) + "\r\n"
	r.send(fmt.Sprintf("A2 APPEND {5}\r\n"))
	if l := r.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("mailbox literal: %q", l)
	}
	r.send(fmt.Sprintf("INBOX (\\Seen) {%d}\r\n", len(body)))
	if l := r.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("message literal: %q", l)
	}
	r.send(body + "\r\n")
	if l := r.until("A2 "); !strings.HasPrefix(l[len(l)-1], "A2 OK [APPENDUID ") {
		t.Fatalf("append: %q", l)
	}
	// Non-synchronizing APPEND, pipelined with the next command.
	r.send(fmt.Sprintf("A3 APPEND INBOX {%d+}\r\n%s\r\nA4 NOOP\r\n", len(body), body))
	if l := r.until("A3 "); !strings.HasPrefix(l[len(l)-1], "A3 OK [APPENDUID ") {
		t.Fatalf("append non-sync: %q", l)
	}
	if l := r.until("A4 "); !strings.HasPrefix(l[len(l)-1], "A4 OK") {
		t.Fatalf("after append: %q", l)
	}
	// A message that looks like commands stays data.
	evil := "Subject: x\r\n\r\nA9 LOGOUT\r\n* BYE\r\n{99}\r\n"
	r.send(fmt.Sprintf("A5 APPEND INBOX {%d+}\r\n%s\r\n", len(evil), evil))
	if l := r.until("A5 "); !strings.HasPrefix(l[len(l)-1], "A5 OK") {
		t.Fatalf("append evil: %q", l)
	}
	r.send("A6 SELECT INBOX\r\nA7 FETCH 3 BODY.PEEK[]\r\n")
	r.until("A6 OK")
	lines := r.until("A7 ")
	if !strings.HasPrefix(lines[len(lines)-1], "A7 OK") || !strings.Contains(strings.Join(lines, "\n"), "A9 LOGOUT") {
		t.Fatalf("fetch evil: %q", lines)
	}
	r.send("A8 GETQUOTAROOT {5+}\r\nINBOX\r\n")
	if l := r.until("A8 "); !strings.HasPrefix(l[len(l)-1], "A8 OK") {
		t.Fatalf("GETQUOTAROOT with a literal: %q", l)
	}
}
