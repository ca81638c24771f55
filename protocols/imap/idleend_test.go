package imap

import (
	"strings"
	"testing"
)

// TestIdleFolderGone: the folder a client idles in is deleted by another
// session. The idling session says BYE and closes at once, not when the
// client next sends something or the autologout timer ends it (30
// minutes during which the BYE sat unsent in the buffer).
func TestIdleFolderGone(t *testing.T) {
	e := newEnv(t)
	r := e.raw(t)
	r.login()
	r.send("A1 CREATE Foo\r\nA2 SELECT Foo\r\nA3 IDLE\r\n")
	r.until("A2 ")
	if l := r.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	o := e.raw(t)
	o.login()
	o.send("B1 DELETE Foo\r\n")
	if l := o.until("B1 "); !strings.HasPrefix(l[len(l)-1], "B1 OK") {
		t.Fatalf("DELETE: %q", l)
	}
	// raw.line waits 10 s, well under the default autologout.
	if l := r.line(); !strings.HasPrefix(l, "* BYE") {
		t.Fatalf("after the folder went: %q, want BYE", l)
	}
	if !r.closed() {
		t.Fatal("connection still open")
	}
}
