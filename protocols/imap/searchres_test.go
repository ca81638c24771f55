package imap

import (
	"strings"
	"testing"
)

// TestSearchResAfterNO: a SEARCH with the SAVE result option that fails
// with a tagged NO sets the search result variable to the empty sequence
// (RFC 5182 2.1), so that "$" in the commands pipelined behind it does
// not act on the result of an earlier search.
func TestSearchResAfterNO(t *testing.T) {
	e := newEnv(t)
	e.deliver(t, "INBOX", "Subject: a\r\n\r\nx\r\n")
	r := e.raw(t)
	r.login()
	r.send("A1 SELECT INBOX\r\nA2 SEARCH RETURN (SAVE) ALL\r\n")
	r.until("A2 ")
	r.send("A3 SEARCH RETURN (SAVE) CHARSET X-NO-SUCH SUBJECT a\r\n")
	if l := r.until("A3 "); !strings.HasPrefix(l[len(l)-1], "A3 NO") {
		t.Fatalf("SEARCH with an unknown charset: %q, want NO", l)
	}
	r.send("A4 FETCH $ UID\r\n")
	if l := r.until("A4 "); len(l) != 1 {
		t.Fatalf("FETCH $ after the failed SEARCH: %q, want no message", l)
	}
}
