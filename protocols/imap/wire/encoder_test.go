package wire

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func encode(utf8 bool, f func(e *Encoder)) string {
	var b bytes.Buffer
	e := NewEncoder(bufio.NewWriter(&b))
	e.UTF8 = utf8
	f(e)
	e.Flush()
	return b.String()
}

// TestEncoderStrings checks the choice between atom, quoted string and
// literal.
func TestEncoderStrings(t *testing.T) {
	long := strings.Repeat("x", maxQuoted+1)
	for _, tc := range []struct {
		in        string
		utf8      bool
		str, astr string
	}{
		{"INBOX", false, `"INBOX"`, "INBOX"},
		{"", false, `""`, `""`},
		{"NIL", false, `"NIL"`, `"NIL"`},
		{"a b", false, `"a b"`, `"a b"`},
		{`q"\`, false, `"q\"\\"`, `"q\"\\"`},
		{"x]y", false, `"x]y"`, "x]y"},
		{"a%b", false, `"a%b"`, `"a%b"`},
		{"caf\u00e9", false, "{5}\r\ncaf\u00e9", "{5}\r\ncaf\u00e9"},
		{"caf\u00e9", true, "\"caf\u00e9\"", "\"caf\u00e9\""},
		{"bad\xff", true, "{4}\r\nbad\xff", "{4}\r\nbad\xff"},
		{"a\r\nb", true, "{4}\r\na\r\nb", "{4}\r\na\r\nb"},
		{"a\x00b", false, "{3}\r\na\x00b", "{3}\r\na\x00b"},
		{long, false, "{1025}\r\n" + long, long},
	} {
		if got := encode(tc.utf8, func(e *Encoder) { e.str(tc.in) }); got != tc.str {
			t.Errorf("str(%q, utf8=%v) = %q, want %q", tc.in, tc.utf8, got, tc.str)
		}
		if got := encode(tc.utf8, func(e *Encoder) { e.astr(tc.in) }); got != tc.astr {
			t.Errorf("astr(%q, utf8=%v) = %q, want %q", tc.in, tc.utf8, got, tc.astr)
		}
	}
}

// TestEncoderResponses checks responses against their RFC examples.
func TestEncoderResponses(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func(e *Encoder)
		want string
	}{
		{"tagged", func(e *Encoder) {
			e.Status("a1", imap.StatusResponseTypeNo, Code(imap.ResponseCodeTryCreate), "Mailbox does not exist")
		},
			"a1 NO [TRYCREATE] Mailbox does not exist\r\n"},
		{"text on one line", func(e *Encoder) { e.Status("*", imap.StatusResponseTypeBye, "", "a\r\nb") }, "* BYE a  b\r\n"},
		{"text echoing 8-bit and controls", func(e *Encoder) {
			e.Status("a", imap.StatusResponseTypeBad, "CLIENTBUG", "Unknown X\xe9\xff\x00\x7f caf\u00e9")
		}, "a BAD [CLIENTBUG] Unknown X???? caf\u00e9\r\n"},
		{"empty text", func(e *Encoder) { e.Status("a", imap.StatusResponseTypeOK, "", "") }, "a OK OK\r\n"},
		{"COPYUID", func(e *Encoder) {
			e.Status("a", imap.StatusResponseTypeOK, CodeCopyUID(38505, imap.UIDSetNum(304, 319, 320), imap.UIDSetNum(3956, 3957, 3958)), "Done")
		}, "a OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n"},
		{"MODIFIED", func(e *Encoder) {
			e.Status("d105", imap.StatusResponseTypeOK, CodeModified(imap.SeqSetNum(7, 9)), "Conditional STORE failed")
		}, "d105 OK [MODIFIED 7,9] Conditional STORE failed\r\n"},
		{"continue", func(e *Encoder) { e.Continue("") }, "+ Ready\r\n"},
		{"capability", func(e *Encoder) { e.Capability([]imap.Cap{imap.CapIMAP4rev1, "CONDSTORE"}) }, "* CAPABILITY IMAP4rev1 CONDSTORE\r\n"},
		{"vanished", func(e *Encoder) { e.Vanished(imap.UIDSetNum(41, 43, 44, 45), true) }, "* VANISHED (EARLIER) 41,43:45\r\n"},
		{"search modseq", func(e *Encoder) { e.Search([]uint32{2, 5, 6, 7, 11, 12, 18, 19, 20, 23}, 917162500) },
			"* SEARCH 2 5 6 7 11 12 18 19 20 23 (MODSEQ 917162500)\r\n"},
		{"search empty", func(e *Encoder) { e.Search(nil, 0) }, "* SEARCH\r\n"},
		{"esearch", func(e *Encoder) {
			e.ESearch("A285", true, &imap.SearchData{Min: 7, Max: 3800}, false)
		}, "* ESEARCH (TAG \"A285\") UID MIN 7 MAX 3800\r\n"},
		{"esearch count 0", func(e *Encoder) { e.ESearch("a", false, &imap.SearchData{}, true) }, "* ESEARCH (TAG \"a\") COUNT 0\r\n"},
		{"thread", func(e *Encoder) {
			e.Thread([]ThreadNode{{Chain: []uint32{2}}, {Chain: []uint32{3, 6}, SubThreads: []ThreadNode{{Chain: []uint32{4, 23}}, {Chain: []uint32{44, 7, 96}}}}})
		}, "* THREAD (2)(3 6 (4 23)(44 7 96))\r\n"},
		{"thread empty", func(e *Encoder) { e.Thread(nil) }, "* THREAD\r\n"},
		{"id nil", func(e *Encoder) { e.ID(nil) }, "* ID NIL\r\n"},
		{"list", func(e *Encoder) {
			e.List(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrHasNoChildren}, Delim: '/', Mailbox: "foo bar", OldName: "baz"}, false)
		}, "* LIST (\\HasNoChildren) \"/\" \"foo bar\" (\"OLDNAME\" (baz))\r\n"},
		{"lsub no delim", func(e *Encoder) { e.List(&imap.ListData{Mailbox: "x"}, true) }, "* LSUB () NIL x\r\n"},
		{"quota", func(e *Encoder) { e.Quota("", []QuotaResource{{imap.QuotaResourceStorage, 10, 512}}) }, "* QUOTA \"\" (STORAGE 10 512)\r\n"},
		{"namespace", func(e *Encoder) {
			e.Namespace(&imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: '/'}}})
		}, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"},
		{"fetch", func(e *Encoder) {
			w := e.Fetch(12)
			w.UID(4827313)
			w.Flags([]imap.Flag{imap.FlagSeen})
			w.ModSeq(65402)
			w.InternalDate(time.Date(1996, 7, 17, 2, 44, 25, 0, time.FixedZone("", -7*3600)))
			w.RFC822Size(4286)
			w.End()
		}, "* 12 FETCH (UID 4827313 FLAGS (\\Seen) MODSEQ (65402) INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" RFC822.SIZE 4286)\r\n"},
		{"fetch section", func(e *Encoder) {
			w := e.Fetch(1)
			w.Section(SectionName(&imap.FetchItemBodySection{Part: []int{1, 2}, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"from", "To"},
				Partial: &imap.SectionPartial{Offset: 10, Size: 5}}), 5, strings.NewReader("hello"), false)
			w.Section("BINARY[1]", 2, strings.NewReader("\x00\x01"), true)
			w.Section("RFC822.TEXT", 0, nil, false)
			w.End()
		}, "* 1 FETCH (BODY[1.2.HEADER.FIELDS (FROM TO)]<10> {5}\r\nhello BINARY[1] ~{2}\r\n\x00\x01 RFC822.TEXT NIL)\r\n"},
		// imaptest's fetch-envelope expectations: groups and a source route.
		{"envelope groups", func(e *Encoder) {
			w := e.Fetch(4)
			ra := []Address{{Name: "Real Name", Mailbox: "user", Host: "domain"}}
			w.Envelope(&Envelope{Date: str("Thu, 15 Feb 2007 01:02:03 +0200"), From: ra, Sender: ra, ReplyTo: ra,
				To: []Address{{Mailbox: "group"}, {Mailbox: "g1", Host: "d1.org"}, {Mailbox: "g2", Host: "d2.org"}, {}, {Mailbox: "group2"}, {Mailbox: "g3", Host: "d3.org"}, {}},
				Cc: []Address{{Mailbox: "group"}, {}, {Mailbox: "group2"}, {}}})
			w.End()
		}, `* 4 FETCH (ENVELOPE ("Thu, 15 Feb 2007 01:02:03 +0200" NIL (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) (("Real Name" NIL "user" "domain")) ((NIL NIL "group" NIL)(NIL NIL "g1" "d1.org")(NIL NIL "g2" "d2.org")(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL "g3" "d3.org")(NIL NIL NIL NIL)) ((NIL NIL "group" NIL)(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL NIL NIL)) NIL NIL NIL))` + "\r\n"},
		{"envelope route", func(e *Encoder) {
			w := e.Fetch(6)
			a := []Address{{Adl: "@route", Mailbox: "user", Host: "domain"}}
			w.Envelope(&Envelope{Date: str("Thu, 15 Feb 2007 01:02:03 +0200"), From: a, Sender: a, ReplyTo: a})
			w.End()
		}, `* 6 FETCH (ENVELOPE ("Thu, 15 Feb 2007 01:02:03 +0200" NIL ((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain")) ((NIL "@route" "user" "domain")) NIL NIL NIL NIL NIL))` + "\r\n"},
		{"body", func(e *Encoder) {
			w := e.Fetch(1)
			w.BodyStructure(&imap.BodyStructureSinglePart{Type: "TEXT", Subtype: "PLAIN", Params: map[string]string{"charset": "us-ascii"}, Encoding: "7BIT", Size: 3028,
				Text: &imap.BodyStructureText{NumLines: 92}}, false)
			w.End()
		}, "* 1 FETCH (BODY (\"TEXT\" \"PLAIN\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3028 92))\r\n"},
	} {
		if got := encode(false, tc.f); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
