package imap

import (
	"slices"
	"strings"
	"testing"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestFetchExpungedElsewhere: one session expunges a message the other
// still sees; the other's FETCH of it answers what the index holds, no
// file items, and OK [EXPUNGEISSUED] (RFC 2180 section 4.1, as Dovecot
// 2.3 does), while the message beside it in the same FETCH arrives whole.
func TestFetchExpungedElsewhere(t *testing.T) {
	e := newEnv(t)
	e.deliver(t, "", "From: a@example.com\r\nSubject: one\r\n\r\nbody one\r\n")
	e.deliver(t, "", "From: b@example.com\r\nSubject: two\r\n\r\nbody two\r\n")
	other := e.login(t, nil)
	if _, err := other.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := other.Store(goimap.SeqSetNum(1), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	// The reader's view of message 1: \Flagged, not yet \Deleted.
	reader := e.login(t, nil)
	if _, err := reader.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	rawReader := e.raw(t)
	rawReader.login()
	rawReader.send("S1 SELECT INBOX\r\n")
	rawReader.until("S1 ")

	if err := other.Store(goimap.SeqSetNum(1), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := other.Expunge().Close(); err != nil {
		t.Fatal(err)
	}

	body := &goimap.FetchItemBodySection{}
	tests := []struct {
		name    string
		options *goimap.FetchOptions
		check   func(t *testing.T, m *imapclient.FetchMessageBuffer)
	}{
		{"BODY[]", &goimap.FetchOptions{BodySection: []*goimap.FetchItemBodySection{body}}, func(t *testing.T, m *imapclient.FetchMessageBuffer) {
			if m.UID != 1 || len(m.BodySection) != 0 {
				t.Errorf("UID %d, %d body sections; want UID 1 and none", m.UID, len(m.BodySection))
			}
		}},
		{"ENVELOPE", &goimap.FetchOptions{Envelope: true}, func(t *testing.T, m *imapclient.FetchMessageBuffer) {
			if m.UID != 1 || m.Envelope == nil || m.Envelope.Subject != "" || len(m.Envelope.From) != 0 {
				t.Errorf("UID %d, envelope %+v; want UID 1 and an empty envelope", m.UID, m.Envelope)
			}
		}},
		{"FLAGS", &goimap.FetchOptions{UID: true, Flags: true, RFC822Size: true}, func(t *testing.T, m *imapclient.FetchMessageBuffer) {
			if m.UID != 1 || !slices.Contains(m.Flags, goimap.FlagFlagged) || m.RFC822Size == 0 {
				t.Errorf("UID %d, flags %v, size %d; want the snapshot's UID 1, \\Flagged and size", m.UID, m.Flags, m.RFC822Size)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := reader.Fetch(goimap.SeqSetNum(1, 2), tc.options).Collect()
			if err != nil {
				t.Fatalf("FETCH: %v, want OK", err)
			}
			if len(msgs) != 2 || msgs[0].SeqNum != 1 || msgs[1].SeqNum != 2 {
				t.Fatalf("FETCH answered %d messages, want 1 and 2", len(msgs))
			}
			tc.check(t, msgs[0])
			// The message still there is answered in full.
			switch {
			case tc.options.Envelope && (msgs[1].Envelope == nil || msgs[1].Envelope.Subject != "two"):
				t.Errorf("message 2 envelope %+v", msgs[1].Envelope)
			case len(tc.options.BodySection) > 0 && !strings.Contains(string(msgs[1].FindBodySection(body)), "body two"):
				t.Errorf("message 2 BODY[] %q", msgs[1].FindBodySection(body))
			}
		})
	}

	// The tagged completion, on the wire: OK with EXPUNGEISSUED, and no
	// EXPUNGE during FETCH.
	rawReader.send("F1 FETCH 1 (FLAGS BODY.PEEK[])\r\n")
	lines := rawReader.until("F1 ")
	if got := lines[len(lines)-1]; !strings.HasPrefix(got, "F1 OK [EXPUNGEISSUED]") {
		t.Errorf("tagged response %q, want F1 OK [EXPUNGEISSUED]", got)
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "* 1 FETCH (UID 1 FLAGS (") || strings.Contains(lines[0], "BODY") {
		t.Errorf("responses %q, want one FETCH with UID and FLAGS only", lines)
	}
	// NOOP then announces the expunge.
	rawReader.send("N1 NOOP\r\n")
	if lines := rawReader.until("N1 "); !strings.Contains(strings.Join(lines, "\n"), "* 1 EXPUNGE") {
		t.Errorf("NOOP after a foreign expunge: %q, want * 1 EXPUNGE", lines)
	}
}
