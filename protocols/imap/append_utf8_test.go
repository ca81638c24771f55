package imap

import (
	"strconv"
	"strings"
	"testing"
)

// utf8Mail is a message/global (RFC 6532): UTF-8 in its header.
const utf8Mail = "From: Jörg <jörg@exämple.org>\r\nTo: a@example.org\r\nSubject: Grüße aus Köln\r\n\r\nHallo, schöne Grüße!\r\n"

// utf8Append is APPEND with RFC 6855's UTF8 data item, as a
// non-synchronizing literal8.
func utf8Append(mailbox, msg string) string {
	return "APPEND " + mailbox + " UTF8 (~{" + strconv.Itoa(len(msg)) + "+}\r\n" + msg + ")"
}

// TestAppendUTF8 stores a message sent as APPEND's UTF8 data item and
// reads it back with FETCH BODY[]; before ENABLE UTF8=ACCEPT the same
// APPEND is BAD and stores nothing, and the session goes on. Dovecot 2.3
// is no oracle here: it advertises neither UTF8=ACCEPT nor answers ENABLE
// UTF8=ACCEPT, and refuses every UTF8 data item.
func TestAppendUTF8(t *testing.T) {
	e := newEnv(t)
	r := e.raw(t)
	r.login()

	steps := []struct {
		cmd  string
		want string // status of the tagged answer
	}{
		{"SELECT INBOX", "OK"},
		// Before ENABLE: BAD, nothing stored; a MULTIAPPEND whose
		// second message is UTF8 stores neither.
		{utf8Append("INBOX", utf8Mail), "BAD"},
		{"APPEND INBOX {3+}\r\nabc " + strings.TrimPrefix(utf8Append("", utf8Mail), "APPEND  "), "BAD"},
		{"NOOP", "OK"},
		{"ENABLE UTF8=ACCEPT", "OK"},
		{utf8Append("INBOX", utf8Mail), "OK"},
		{"APPEND INBOX (\\Seen) " + strings.TrimPrefix(utf8Append("", "Subject: é\r\n\r\nx\r\n"), "APPEND  "), "OK"},
	}
	for i, s := range steps {
		tag := "u" + strconv.Itoa(i)
		_, done := r.run(tag, s.cmd)
		if got, _, _ := strings.Cut(done, " "); got != s.want {
			t.Errorf("%.60q: %q, want %s", s.cmd, done, s.want)
		}
	}

	// Exactly the two accepted messages are there, as sent.
	for i, want := range []string{utf8Mail, "Subject: é\r\n\r\nx\r\n"} {
		seq := strconv.Itoa(i + 1)
		r.send("f" + seq + " FETCH " + seq + " BODY.PEEK[]\r\n")
		ours := strings.Join(r.until("f"+seq+" "), "\r\n")
		lit := "BODY[] {" + strconv.Itoa(len(want)) + "}\r\n" + want + ")"
		if !strings.Contains(ours, lit) || !strings.Contains(ours, "f"+seq+" OK") {
			t.Errorf("FETCH %s BODY[]: %q, want %q", seq, ours, lit)
		}
	}
	if lines, done := r.run("s", "STATUS INBOX (MESSAGES)"); len(lines) != 1 || !strings.HasSuffix(lines[0], "(MESSAGES 2)") || !strings.HasPrefix(done, "OK") {
		t.Errorf("STATUS: %q %q", lines, done)
	}
}

// TestAppendUTF8Sync: a synchronizing literal8 in a UTF8 data item gets
// its continuation request, and refused before ENABLE its octets are
// skipped, not read as commands.
func TestAppendUTF8Sync(t *testing.T) {
	e := newEnv(t)
	r := e.raw(t)
	r.login()
	body := "a1 NOOP\r\n" // would be a command if the skip went wrong
	for _, enable := range []bool{false, true} {
		if enable {
			r.run("e", "ENABLE UTF8=ACCEPT")
		}
		r.send("a APPEND INBOX UTF8 (~{" + strconv.Itoa(len(body)) + "}\r\n")
		if l := r.line(); !strings.HasPrefix(l, "+") {
			t.Fatalf("continuation %q", l)
		}
		r.send(body + ")\r\nb NOOP\r\n")
		lines := r.until("b ")
		want := "a BAD"
		if enable {
			want = "a OK [APPENDUID"
		}
		if !strings.HasPrefix(lines[0], want) || len(lines) != 2 || !strings.HasPrefix(lines[1], "b OK") {
			t.Errorf("enabled %v: %q, want %q then b OK", enable, lines, want)
		}
	}
}
