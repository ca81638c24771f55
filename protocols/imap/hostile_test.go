package imap

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
)

// hostileCase is malformed or hostile client input and the answer it
// must get; FuzzSession takes its inputs as seeds.
type hostileCase struct {
	name    string
	login   bool   // log in first
	select_ bool   // and select INBOX
	send    string // the hostile input
	extra   string // sent after a continuation request (literal data)
	want    string // prefix of the answer line sought; "" for none
	exact   bool   // want is the whole line
	then    string // prefix of a further answer line, if any
	closes  bool   // the server closes the connection afterwards
}

func hostileCases() []hostileCase {
	long := strings.Repeat("x", DefaultMaxLineLength+10)
	// 10,000 ORs: a chain nests past the depth limit, a balanced tree
	// stays within it but has too many tokens; both fit in a line.
	orChain := strings.Repeat("OR 1 ", 10000) + "1"
	var orTree func(n int) string
	orTree = func(n int) string {
		if n == 1 {
			return "1"
		}
		return "OR " + orTree(n/2) + " " + orTree(n-n/2)
	}
	return []hostileCase{
		// Empty lines are ignored, as Dovecot does.
		{name: "empty lines", send: "\r\n\n\r\n"},
		{name: "tag only", send: "A1\r\n", want: "A1 BAD [CLIENTBUG] Missing command", exact: true},
		{name: "invalid tag", send: "A*1 NOOP\r\n", want: "* BAD [CLIENTBUG] Invalid tag", exact: true},
		{name: "plus tag", send: "+ NOOP\r\n", want: "* BAD [CLIENTBUG] Invalid tag", exact: true},
		{name: "8-bit tag", send: "A\xe91 NOOP\r\n", want: "* BAD [CLIENTBUG] Invalid tag", exact: true},
		{name: "bare UID", login: true, send: "A1 UID\r\n", want: "A1 BAD [CLIENTBUG] Missing arguments", exact: true},
		{name: "UID of a command without one", login: true, send: "A1 UID FROB 1\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command UID FROB: Unknown command", exact: true},
		{name: "NUL in command", send: "A1 NO\x00OP\r\n", want: "A1 BAD [CLIENTBUG] NUL octet in command", exact: true},
		{name: "NUL in argument", send: "A1 LOGIN a\x00b c\r\n", want: "A1 BAD [CLIENTBUG] NUL octet in command", exact: true},
		{name: "overlong line", send: "A1 NOOP " + long + "\r\n", want: "A1 BAD [TOOBIG] Command line too long", exact: true},
		{name: "overlong line announcing a literal", send: "A1 LOGIN " + long + " {5+}\r\nhello\r\n", want: "A1 BAD [TOOBIG] Command line too long", exact: true},
		{name: "huge sync literal", send: "A1 LOGIN {999999999}\r\n", want: "A1 BAD [TOOBIG] Error in IMAP command LOGIN: Literal too large", exact: true},
		{name: "absurd literal", send: "A1 LOGIN {99999999999999999999999}\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command LOGIN: Invalid literal"},
		{name: "big non-sync literal after an error is skipped", login: true, send: "A1 NOOP x {70000+}\r\n" + strings.Repeat("y", 70000) + "\r\n",
			want: "A1 BAD [CLIENTBUG] Error in IMAP command NOOP: Unexpected arguments"},
		// Before login no literal may exceed an argument's 64 KiB, not even
		// one to skip: a client that never logs in cannot have the server
		// read an APPEND's worth of octets per command.
		{name: "big non-sync literal before login closes", send: "A1 NOOP x {70000+}\r\n", want: "* BYE [TOOBIG] Literal too large to skip", exact: true, closes: true},
		{name: "APPEND before login", send: "A1 APPEND INBOX {70000+}\r\n", want: "A1 BAD [CLIENTBUG] Not logged in", exact: true, then: "* BYE [TOOBIG] Literal too large to skip", closes: true},
		{name: "huge non-sync literal closes", send: "A1 LOGIN {999999999+}\r\n", want: "* BYE [TOOBIG] Error in IMAP command LOGIN: Non-synchronizing literal too large", exact: true, closes: true},
		{name: "bad literal syntax", send: "A1 LOGIN {abc}\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command LOGIN: Invalid literal"},
		{name: "negative literal", send: "A1 LOGIN {-5}\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command LOGIN: Invalid literal"},
		{name: "APPEND over APPENDLIMIT", login: true, send: "A1 APPEND INBOX {999999999}\r\n", want: "A1 NO [TOOBIG] Error in IMAP command APPEND: Literal too large", exact: true},
		// The flag is refused before the literal's "+": no data follows.
		{name: "APPEND bad flag", login: true, send: "A1 APPEND INBOX (\\Bad%flag) {5000}\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command APPEND: Expected ' ' or ')'"},
		{name: "SELECT before login", send: "A1 SELECT INBOX\r\n", want: "A1 BAD [CLIENTBUG] Not logged in", exact: true},
		{name: "GETQUOTAROOT before login", send: "A1 GETQUOTAROOT INBOX\r\n", want: "A1 BAD [CLIENTBUG] Not logged in", exact: true},
		{name: "ENABLE before login", send: "A1 ENABLE CONDSTORE\r\n", want: "A1 BAD [CLIENTBUG] Not logged in", exact: true},
		{name: "COMPRESS before login", send: "A1 COMPRESS DEFLATE\r\n", want: "A1 BAD [CLIENTBUG] Not logged in", exact: true},
		{name: "FETCH without selection", login: true, send: "A1 FETCH 1 FLAGS\r\n", want: "A1 BAD [CLIENTBUG] No mailbox selected", exact: true},
		{name: "LOGIN twice", login: true, send: "A1 LOGIN a b\r\n", want: "A1 BAD [CLIENTBUG] Already logged in", exact: true},
		{name: "STARTTLS without TLS", send: "A1 STARTTLS\r\n", want: "A1 BAD [CLIENTBUG] STARTTLS is not available on this listener", exact: true},
		{name: "SETQUOTA", login: true, send: "A1 SETQUOTA \"\" (STORAGE 1)\r\n", want: "A1 NO [NOPERM]"},
		{name: "unknown command after login", login: true, send: "A1 FROBNICATE\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command FROBNICATE: Unknown command", exact: true},
		// An HTTP request is refused line by line until the error budget
		// (TestHostileErrorBudget) ends it.
		{name: "unknown command before login", send: "GET / HTTP/1.1\r\n", want: "GET BAD [CLIENTBUG] Error in IMAP command /: Unknown command", exact: true},
		{name: "sequence number out of range", login: true, select_: true, send: "A1 FETCH 99 FLAGS\r\n", want: "A1 BAD [CLIENTBUG] Invalid message sequence number", exact: true},
		{name: "huge sequence number", login: true, select_: true, send: "A1 FETCH 99999999999 FLAGS\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command FETCH: Invalid sequence set \"99999999999\"", exact: true},
		{name: "deep nesting", login: true, select_: true, send: "A1 SEARCH " + strings.Repeat("(", 2000) + "\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command SEARCH: Too deeply nested", exact: true},
		{name: "nesting over the limit", login: true, select_: true, send: "A1 SEARCH " + strings.Repeat("(", 17) + "ALL" + strings.Repeat(")", 17) + "\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command SEARCH: Too deeply nested", exact: true},
		{name: "SEARCH 10k ORs chained", login: true, select_: true, send: "A1 SEARCH " + orChain + "\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command SEARCH: Too deeply nested", exact: true},
		{name: "SORT 10k ORs balanced", login: true, select_: true, send: "A1 SORT (ARRIVAL) UTF-8 " + orTree(10001) + "\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command SORT: Too many arguments", exact: true},
		{name: "SORT criteria over the line limit", login: true, select_: true, send: "A1 SORT (DATE) UTF-8 " + strings.Repeat("OR ALL ", 10000) + "ALL\r\n", want: "A1 BAD [TOOBIG] Command line too long", exact: true},
		{name: "SEARCH criteria over the command limit", login: true, select_: true,
			send: "A1 SEARCH" + strings.Repeat(" SUBJECT {60000+}\r\n"+strings.Repeat("s", 60000), 17) + " SUBJECT {60000}\r\n",
			want: "A1 BAD [TOOBIG] Error in IMAP command SEARCH: Command too long", exact: true},
		// Accepted criteria of hostile size, and messages built to trap
		// threading and sorting (hostileMessages): answered, in time.
		{name: "SEARCH 8k ORs", login: true, select_: true, send: "A1 SEARCH " + orTree(8000) + "\r\n", want: "* SEARCH", then: "A1 OK"},
		{name: "SORT 8k ORs", login: true, select_: true, send: "A1 SORT (SUBJECT) UTF-8 " + orTree(8000) + "\r\n", want: "* SORT", then: "A1 OK"},
		{name: "SORT of hostile headers", login: true, select_: true, send: "A1 SORT (REVERSE SUBJECT DISPLAYFROM DATE) UTF-8 ALL\r\n", want: "* SORT", then: "A1 OK"},
		{name: "THREAD REFERENCES of hostile headers", login: true, select_: true, send: "A1 THREAD REFERENCES UTF-8 ALL\r\n", want: "* THREAD", then: "A1 OK"},
		{name: "THREAD ORDEREDSUBJECT of hostile headers", login: true, select_: true, send: "A1 UID THREAD ORDEREDSUBJECT UTF-8 ALL\r\n", want: "* THREAD", then: "A1 OK"},
		{name: "LIST with many wildcards", login: true, send: "A1 LIST \"\" \"" + strings.Repeat("*%", 500) + "x\"\r\n", want: "A1 OK"},
		{name: "THREAD unknown algorithm", login: true, select_: true, send: "A1 THREAD FROBNICATE UTF-8 ALL\r\n", want: "A1 BAD [CLIENTBUG] Unknown thread algorithm FROBNICATE", exact: true},
		{name: "THREAD 8-bit algorithm", login: true, select_: true, send: "A1 THREAD \xe9\xff UTF-8 ALL\r\n", want: "A1 BAD [CLIENTBUG] Unknown thread algorithm ??", exact: true},
		{name: "FETCH CHANGEDSINCE not a number", login: true, select_: true, send: "A1 FETCH 1 (FLAGS) (CHANGEDSINCE x)\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command FETCH: Expected a number at \"x)\"", exact: true},
		{name: "FETCH CHANGEDSINCE 0", login: true, select_: true, send: "A1 FETCH 1 (FLAGS) (CHANGEDSINCE 0)\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command FETCH: Mod-sequence must not be zero", exact: true},
		{name: "STORE UNCHANGEDSINCE negative", login: true, select_: true, send: "A1 STORE 1 (UNCHANGEDSINCE -1) +FLAGS (\\Seen)\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command STORE: Expected a number"},
		{name: "SEARCH MODSEQ over 2^63", login: true, select_: true, send: "A1 SEARCH MODSEQ 99999999999999999999\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command SEARCH: Number too large", exact: true},
		{name: "SELECT QRESYNC without ENABLE", login: true, send: "A1 SELECT INBOX (QRESYNC (1 1))\r\n", want: "A1 BAD [CLIENTBUG] QRESYNC is not enabled", exact: true},
		{name: "ID with too many fields", send: "A1 ID (" + strings.Repeat("\"k\" \"v\" ", 31) + ")\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command ID: Too many ID fields", exact: true},
		{name: "ID with an oversized value", send: "A1 ID (\"name\" \"" + strings.Repeat("v", 1025) + "\")\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command ID: ID field too long", exact: true},
		{name: "ID with an oversized key", send: "A1 ID (\"" + strings.Repeat("k", 31) + "\" \"v\")\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command ID: ID field too long", exact: true},
		{name: "ID with a literal value", send: "A1 ID (\"name\" {5+}\r\nhello)\r\n", want: "* ID (\"name\" \"vmaild\")", exact: true, then: "A1 OK"},
		{name: "ENABLE of unknown capabilities", login: true, send: "A1 ENABLE X-FROB IMAP4rev9 CONDSTORE\r\n", want: "* ENABLED CONDSTORE", exact: true, then: "A1 OK"},
		{name: "COMPRESS of an unknown mechanism", login: true, send: "A1 COMPRESS LZW\r\n", want: "A1 BAD [CLIENTBUG] Unknown compression mechanism", exact: true},
		{name: "IDLE ended by garbage", login: true, select_: true, send: "A1 IDLE\r\n", extra: "NOT-DONE\r\n", want: "A1 BAD [CLIENTBUG] Expected DONE", exact: true},
		{name: "AUTHENTICATE cancelled", send: "A1 AUTHENTICATE PLAIN\r\n", extra: "*\r\n", want: "A1 BAD [CLIENTBUG] Authentication cancelled", exact: true},
		{name: "AUTHENTICATE with an overlong response", send: "A1 AUTHENTICATE PLAIN\r\n", extra: strings.Repeat("Q", 70000) + "\r\n", want: "A1 BAD [TOOBIG] Line too long", exact: true},
		{name: "AUTHENTICATE response with a bare CR", send: "A1 AUTHENTICATE PLAIN\r\n", extra: strings.Repeat("Q", 5000) + "\rA2 LOGOUT\r\n", want: "A1 BAD [CLIENTBUG] Invalid base64 in SASL response", exact: true},
		{name: "bare LF line ends", send: "A1 NOOP\n", want: "A1 OK"},
		// Command smuggling: bytes taken for data or for the rest of a
		// line must never become a command. Each case hides a LOGOUT that
		// would close the connection, and the test fails on any answer to
		// A2.
		{name: "sync literal after a syntax error", send: "A1 NOOP x{11}\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command NOOP: Unexpected arguments"},
		{name: "non-sync literal after a syntax error", send: "A1 NOOP x{11+}\r\nA2 LOGOUT\r\n\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command NOOP: Unexpected arguments"},
		{name: "literal after a syntax error, logged in", login: true, send: "A1 SELECT INBOX x{11+}\r\nA2 LOGOUT\r\n\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command SELECT: Expected '('"},
		// A quoted string ends with its line: what follows the CRLF is
		// the next command (as for Dovecot).
		{name: "quoted string across CRLF", send: "A1 LOGIN \"a\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command LOGIN: Unterminated quoted string", exact: true},
		{name: "quoted string hiding a literal", send: "A1 LOGIN \"a {11+}\r\nA2 LOGOUT\r\n\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command LOGIN: Unterminated quoted string", exact: true},
		{name: "escaped quote keeps the string open", send: "A1 LOGIN \"a\\\" {11+}\r\nA2 LOGOUT\r\n\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command LOGIN: Unterminated quoted string", exact: true},
		{name: "CR inside a line", send: "A1 NOOP x\rA2 LOGOUT\r\n", want: "A1 BAD [CLIENTBUG] CR without LF in command", exact: true},
		{name: "CR inside a quoted string", send: "A1 NOOP \"\rA2 LOGOUT\"\r\n", want: "A1 BAD [CLIENTBUG] CR without LF in command", exact: true},
		{name: "CR inside a quoted string after a literal", send: "A1 LOGIN {1+}\r\nu \"p\rA2 LOGOUT\"\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command LOGIN: CR in quoted string", exact: true},
		{name: "name running into 8-bit", send: "A1 LOGOUT\xe9\r\n", want: "A1 BAD [CLIENTBUG] Invalid command name", exact: true},
		{name: "space after a literal announcement", send: "A1 SELECT {5} \r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command SELECT: Invalid literal"},
		// MULTIAPPEND: the second literal is a second message, not a command.
		{name: "second APPEND message", login: true, send: "A1 APPEND INBOX {5+}\r\nhello {11+}\r\nA2 LOGOUT\r\n\r\n", want: "A1 OK [APPENDUID"},
		{name: "data after the APPEND message", login: true, send: "A1 APPEND INBOX {5+}\r\nhello) x\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command APPEND: Expected a space"},
		{name: "second streamed APPEND message", login: true, send: "A1 APPEND INBOX {5000+}\r\n" + strings.Repeat("m", 5000) + " {11+}\r\nA2 LOGOUT\r\n\r\n", want: "A1 OK [APPENDUID"},
		// RFC 6855's UTF8 data item: BAD before ENABLE UTF8=ACCEPT, its
		// literal skipped, never read as a command.
		{name: "APPEND UTF8 without ENABLE", login: true, send: "A1 APPEND INBOX UTF8 (~{11+}\r\nA2 LOGOUT\r\n)\r\n", want: "A1 BAD [CLIENTBUG] APPEND UTF8 needs ENABLE UTF8=ACCEPT first", exact: true},
		{name: "APPEND UTF8 with a classic literal", login: true, send: "A1 APPEND INBOX UTF8 ({11+}\r\nA2 LOGOUT\r\n)\r\n", want: "A1 BAD [CLIENTBUG] Error in IMAP command APPEND: UTF8 data must be a literal8"},
		{name: "APPEND UTF8 unclosed", login: true, send: "A1 ENABLE UTF8=ACCEPT\r\nA2 APPEND INBOX UTF8 (~{11+}\r\nA3 LOGOUT\r\n\r\n", want: "A1 OK", then: "A2 BAD [CLIENTBUG] Error in IMAP command APPEND: Missing ')'"},
		{name: "CREATE a virtual special use", login: true, send: "A1 CREATE x (USE (\\All))\r\n", want: "A1 NO [USEATTR] Unsupported special-use attribute", exact: true},
		{name: "large APPEND mailbox literal", login: true, send: "A1 APPEND {5000+}\r\n" + strings.Repeat("m", 5000-len("\r\nA2 LOGOUT\r\n")) + "\r\nA2 LOGOUT\r\n (\\Seen) {1+}\r\nx\r\n", want: "A1 NO Mailbox name is not valid mUTF-7", exact: true},
		{name: "long tag", send: strings.Repeat("t", 300) + " NOOP x\r\n", want: strings.Repeat("t", 300) + " BAD [CLIENTBUG] Error in IMAP command NOOP: Unexpected arguments"},
	}
}

// hostileMessages are messages whose headers threading, sorting and
// searching must survive: References in a cycle, a message referring to
// itself, ten thousand references, a subject buried under a thousand
// "Re:" and "[Fwd: ...]" (base subject extraction, RFC 5256).
func hostileMessages() []string {
	var refs strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&refs, " <r%d@example.net>", i)
	}
	return []string{
		"Message-ID: <a@example.net>\r\nReferences: <b@example.net>\r\nIn-Reply-To: <b@example.net>\r\nSubject: loop\r\n\r\na\r\n",
		"Message-ID: <b@example.net>\r\nReferences: <a@example.net>\r\nIn-Reply-To: <a@example.net>\r\nSubject: Re: loop\r\n\r\nb\r\n",
		"Message-ID: <c@example.net>\r\nReferences: <c@example.net> <c@example.net>\r\nIn-Reply-To: <c@example.net>\r\nSubject: self\r\n\r\nc\r\n",
		"Message-ID: <d@example.net>\r\nReferences:" + refs.String() + "\r\nSubject: many\r\n\r\nd\r\n",
		"Message-ID: <e@example.net>\r\nSubject: " + strings.Repeat("Re: [Fwd: ", 1000) + "x" + strings.Repeat("]", 1000) + "\r\nFrom: " + strings.Repeat("\"a\" <a@b>, ", 2000) + "c@d\r\n\r\ne\r\n",
	}
}

// TestHostileInput sends malformed and hostile input over a raw socket and
// checks the exact answer, that nothing else is answered (a command
// smuggled in the input would be), and that the connection (or, where it
// must close, the server) goes on serving.
func TestHostileInput(t *testing.T) {
	e := newEnv(t)
	for _, m := range append([]string{msg1}, hostileMessages()...) {
		e.deliver(t, "", m)
	}
	for _, tc := range hostileCases() {
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
			match := func(got, want string, exact bool) bool {
				return got == want || !exact && strings.HasPrefix(got, want)
			}
			for _, w := range []struct {
				want  string
				exact bool
			}{{tc.want, tc.exact}, {tc.then, false}} {
				if w.want == "" {
					continue
				}
				for {
					got := r.line()
					if match(got, w.want, w.exact) {
						break
					}
					if !strings.HasPrefix(got, "* ") || strings.HasPrefix(got, "* BYE") {
						t.Fatalf("answer %q, want %q", got, w.want)
					}
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
			// Nothing else is answered: only untagged data may come
			// before the next command's completion.
			r.send("Z1 NOOP\r\n")
			lines := r.until("Z1 ")
			for _, l := range lines[:len(lines)-1] {
				if !strings.HasPrefix(l, "* ") || strings.HasPrefix(l, "* BYE") || strings.HasPrefix(l, "* BAD") {
					t.Fatalf("unexpected answer %q before %q", l, lines[len(lines)-1])
				}
			}
			if l := lines[len(lines)-1]; !strings.HasPrefix(l, "Z1 OK") {
				t.Fatalf("after hostile input: %q", lines)
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
		if len(m.BodySection) != 1 {
			t.Fatalf("message %d: %d body sections", i+1, len(m.BodySection))
		}
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
		if len(msgs) != 1 || len(msgs[0].BodySection) != 1 {
			t.Fatalf("partial %v: %+v", p, msgs)
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

// TestPipelinedPartial: answers go out before the server waits for more
// input, also when the input it holds is only the start of a command, or
// the rest of a refused one: a client waiting for them before it sends
// more must not wait for ever.
func TestPipelinedPartial(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, send, want, rest string
	}{
		{"command cut short", "A1 NOOP\r\nA2 NO", "A1 OK", "OP\r\n"},
		{"rest of a refused APPEND", "L1 LOGIN " + testUser + " " + testPass + "\r\nA1 APPEND \"&\" {1+}\r\nx\r\n", "A1 NO", "A2 NOOP\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.raw(t)
			r.send(tc.send)
			if l := r.until(tc.want[:3]); !strings.HasPrefix(l[len(l)-1], tc.want) {
				t.Fatalf("answer %q, want %q", l, tc.want)
			}
			r.send(tc.rest)
			if l := r.until("A2 "); !strings.HasPrefix(l[len(l)-1], "A2 OK") {
				t.Fatalf("then %q", l)
			}
		})
	}
}

// TestHostileErrorBudget: refused commands are answered BAD and the
// session goes on, up to the error budget, then BYE and close. Before
// login the budget is a total (a NOOP in between does not reset it);
// after, it counts refusals in a row.
func TestHostileErrorBudget(t *testing.T) {
	e := newEnv(t)
	bads := []string{"B%d FROBNICATE\r\n", "B%d NOOP x\r\n", "+ NOOP\r\n", "B%d SELECT\r\n"}
	badCmd := func(i int) (cmd, tag string) {
		f := bads[i%len(bads)]
		if !strings.Contains(f, "%d") {
			return f, "*"
		}
		tag = fmt.Sprintf("B%d", i)
		return fmt.Sprintf(f, i), tag
	}
	run := func(t *testing.T, r *raw, from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			cmd, tag := badCmd(i)
			r.send(cmd)
			if l := r.line(); !strings.HasPrefix(l, tag+" BAD [CLIENTBUG] ") {
				t.Fatalf("bad command %d: %q", i+1, l)
			}
		}
	}
	bye := func(t *testing.T, r *raw, i int) {
		t.Helper()
		cmd, tag := badCmd(i)
		r.send(cmd)
		if l := r.line(); !strings.HasPrefix(l, tag+" BAD [CLIENTBUG] ") {
			t.Fatalf("last bad command: %q", l)
		}
		if l := r.line(); l != "* BYE Too many invalid IMAP commands." {
			t.Fatalf("after the budget: %q", l)
		}
		if !r.closed() {
			t.Fatal("open after BYE")
		}
	}
	t.Run("before login", func(t *testing.T) {
		r := e.raw(t)
		run(t, r, 0, maxBadBeforeLogin/2)
		r.send("N1 NOOP\r\n")
		if l := r.line(); !strings.HasPrefix(l, "N1 OK") {
			t.Fatalf("NOOP: %q", l)
		}
		run(t, r, maxBadBeforeLogin/2, maxBadBeforeLogin-1-maxBadBeforeLogin/2)
		bye(t, r, maxBadBeforeLogin-1)
	})
	t.Run("logged in", func(t *testing.T) {
		r := e.raw(t)
		r.login()
		run(t, r, 0, maxBadInARow-1)
		r.send("N1 NOOP\r\n")
		if l := r.line(); !strings.HasPrefix(l, "N1 OK") {
			t.Fatalf("NOOP: %q", l)
		}
		run(t, r, 0, maxBadInARow-1)
		bye(t, r, maxBadInARow-1)
	})
}

// TestHostileTimeouts: a client that stays in IDLE past the idle
// timeout, or stalls in the middle of an APPEND message past the command
// timeout, is told BYE and disconnected; the stalled message is not
// answered as a failure to retry.
func TestHostileTimeouts(t *testing.T) {
	e := newEnv(t, func(s *Server) {
		s.Timeouts.Idle = 300 * time.Millisecond
		s.Timeouts.Command = 300 * time.Millisecond
	})
	tests := []struct{ name, send, cont, stall string }{
		{"IDLE", "S1 SELECT INBOX\r\nI1 IDLE\r\n", "+ idling", ""},
		{"APPEND", "A1 APPEND INBOX {100}\r\n", "+ ", "Subject: cut short\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.raw(t)
			r.login()
			r.send(tc.send)
			for {
				l := r.line()
				if strings.HasPrefix(l, tc.cont) {
					break
				}
				if !strings.HasPrefix(l, "* ") && !strings.HasPrefix(l, "S1 OK") {
					t.Fatalf("before the wait: %q", l)
				}
			}
			if tc.stall != "" {
				r.send(tc.stall)
			}
			if l := r.line(); l != "* BYE Autologout: disconnected for inactivity" {
				t.Fatalf("after the timeout: %q", l)
			}
			if !r.closed() {
				t.Fatal("open after BYE")
			}
		})
	}
}

// TestHostileID: the client's ID fields are logged once per connection,
// bounded, and under "id." where they cannot pass for the session's own
// attributes.
func TestHostileID(t *testing.T) {
	var log bytes.Buffer
	var mu sync.Mutex
	e := newEnv(t, func(s *Server) {
		s.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &log}, nil))
	})
	r := e.raw(t)
	id := "I%d ID (\"user\" \"victim@example.org\" \"name\" \"" + strings.Repeat("n", 1000) + "\")\r\n"
	for i := range 3 {
		r.send(fmt.Sprintf(id, i))
		if l := r.until(fmt.Sprintf("I%d ", i)); !strings.HasPrefix(l[len(l)-1], fmt.Sprintf("I%d OK", i)) {
			t.Fatalf("ID: %q", l)
		}
	}
	r.send("Z1 LOGOUT\r\n")
	r.closed()
	mu.Lock()
	defer mu.Unlock()
	got := log.String()
	if n := strings.Count(got, "imap client id"); n != 1 {
		t.Fatalf("ID logged %d times:\n%s", n, got)
	}
	if !strings.Contains(got, " id.user=victim@example.org") || strings.Contains(got, " user=victim") {
		t.Fatalf("ID fields not kept apart:\n%s", got)
	}
	if strings.Contains(got, strings.Repeat("n", maxIDLogValue+1)) {
		t.Fatalf("ID value logged whole:\n%s", got)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestHostileSTARTTLS: plaintext sent after STARTTLS never runs as a
// command, whether it was pipelined behind STARTTLS (dropped: the session
// goes on under TLS) or sent after the OK in place of a TLS handshake (the
// handshake fails and the connection closes unanswered).
func TestHostileSTARTTLS(t *testing.T) {
	e := newEnv(t, withTLS(true))
	t.Run("pipelined, with a literal", func(t *testing.T) {
		r := e.raw(t)
		r.send("S1 STARTTLS\r\nX1 LOGIN {5+}\r\nX2 LOGOUT\r\n")
		if l := r.line(); l != "S1 OK Begin TLS negotiation now" {
			t.Fatalf("STARTTLS: %q", l)
		}
		tc := tls.Client(r.c, clientTLS())
		if err := tc.Handshake(); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		tr := &raw{t: t, c: tc, br: bufio.NewReader(tc)}
		tr.send("N1 NOOP\r\n")
		if l := tr.line(); !strings.HasPrefix(l, "N1 OK") {
			t.Fatalf("under TLS: %q (nothing pipelined may run)", l)
		}
	})
	t.Run("plaintext instead of the handshake", func(t *testing.T) {
		r := e.raw(t)
		r.send("S1 STARTTLS\r\n")
		if l := r.line(); l != "S1 OK Begin TLS negotiation now" {
			t.Fatalf("STARTTLS: %q", l)
		}
		r.send("X1 LOGIN " + testUser + " " + testPass + "\r\nX2 NOOP\r\n")
		r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		rest, err := io.ReadAll(r.br)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the connection stays open after a failed handshake")
		}
		if bytes.Contains(rest, []byte("X1")) || bytes.Contains(rest, []byte("X2")) {
			t.Fatalf("plaintext answered: %q", rest)
		}
	})
}
