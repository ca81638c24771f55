package imap

import (
	"strings"
	"testing"
)

// TestEnableCondstoreSelected: ENABLE CONDSTORE or QRESYNC with a mailbox
// selected is a CONDSTORE enabling command like the others (RFC 7162
// 3.1): the client learns the mailbox's HIGHESTMODSEQ, which the SELECT
// before it did not send.
func TestEnableCondstoreSelected(t *testing.T) {
	for _, capa := range []string{"CONDSTORE", "QRESYNC"} {
		t.Run(capa, func(t *testing.T) {
			e := newEnv(t)
			e.deliver(t, "INBOX", "Subject: a\r\n\r\nx\r\n")
			r := e.raw(t)
			r.login()
			r.send("A1 SELECT INBOX\r\n")
			r.until("A1 ")
			r.send("A2 ENABLE " + capa + "\r\n")
			l := strings.Join(r.until("A2 "), "\n")
			if !strings.Contains(l, "* ENABLED "+capa) || !strings.Contains(l, "* OK [HIGHESTMODSEQ ") {
				t.Fatalf("ENABLE %s while selected: %q", capa, l)
			}
		})
	}
}
