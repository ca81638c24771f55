package wire

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// result is what ReadCommand gave for one command.
type result struct {
	cmd *Command
	err error
}

// readAll reads every command of input until EOF or a fatal error,
// counting continuation requests.
func readAll(t testing.TB, input string, lim Limits) (out []result, conts int) {
	t.Helper()
	r := NewReader(bufio.NewReader(strings.NewReader(input)), lim, func() error { conts++; return nil })
	for i := 0; i < 1000; i++ {
		cmd, err := r.ReadCommand()
		if errors.Is(err, io.EOF) {
			return out, conts
		}
		if a, ok := cmdArgs[*Append](cmd); ok && err == nil {
			for {
				m, merr := a.Next()
				if merr != nil || m == nil {
					err = merr
					break
				}
				io.Copy(io.Discard, m.Body)
			}
		}
		out = append(out, result{cmd, err})
		var e *Error
		if err != nil && (!errors.As(err, &e) || e.Fatal) {
			return out, conts
		}
	}
	t.Fatal("no end")
	return nil, 0
}

func cmdArgs[T any](cmd *Command) (T, bool) {
	var zero T
	if cmd == nil {
		return zero, false
	}
	a, ok := cmd.Args.(T)
	return a, ok
}

func seqs(s string) imap.SeqSet {
	var set imap.SeqSet
	for _, p := range strings.Split(s, ",") {
		a, b, ok := parseRange([]byte(p))
		if !ok {
			panic(p)
		}
		set.AddRange(a, b)
	}
	return set
}

func uids(s string) imap.UIDSet {
	var set imap.UIDSet
	for _, p := range strings.Split(s, ",") {
		a, b, ok := parseRange([]byte(p))
		if !ok {
			panic(p)
		}
		set.AddRange(imap.UID(a), imap.UID(b))
	}
	return set
}

func str(s string) *string { return &s }

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// validCommands are well-formed commands and what they parse to.
var validCommands = []struct {
	in   string
	name string
	args any
}{
	{"a CAPABILITY", "CAPABILITY", nil},
	{"a noop", "NOOP", nil},
	{"a LOGOUT", "LOGOUT", nil},
	{"a STARTTLS", "STARTTLS", nil},
	{"a CHECK", "CHECK", nil},
	{"a CLOSE", "CLOSE", nil},
	{"a UNSELECT", "UNSELECT", nil},
	{"a NAMESPACE", "NAMESPACE", nil},
	{"a IDLE", "IDLE", nil},
	{"a EXPUNGE", "EXPUNGE", nil},
	{"a UID EXPUNGE 1:3,7", "UID EXPUNGE", &UIDExpunge{UIDs: uids("1:3,7")}},
	{`a LOGIN joe "se\"cr\\et"`, "LOGIN", &Login{"joe", `se"cr\et`}},
	{"a LOGIN {3+}\r\njoe {4+}\r\npass", "LOGIN", &Login{"joe", "pass"}},
	{"a LOGIN ]x] y", "LOGIN", &Login{"]x]", "y"}},
	{"a AUTHENTICATE plain", "AUTHENTICATE", &Authenticate{Mechanism: "PLAIN"}},
	{"a AUTHENTICATE PLAIN AGpvZQBwYXNz", "AUTHENTICATE", &Authenticate{Mechanism: "PLAIN", InitialResponse: []byte("\x00joe\x00pass"), HasInitial: true}},
	{"a AUTHENTICATE PLAIN =", "AUTHENTICATE", &Authenticate{Mechanism: "PLAIN", InitialResponse: []byte{}, HasInitial: true}},
	{"a SELECT inbox", "SELECT", &Select{Mailbox: "INBOX"}},
	{"a EXAMINE Sent", "EXAMINE", &Select{Mailbox: "Sent", ReadOnly: true, Options: imap.SelectOptions{ReadOnly: true}}},
	{"a SELECT INBOX (CONDSTORE)", "SELECT", &Select{Mailbox: "INBOX", Options: imap.SelectOptions{CondStore: true}}},
	{"a SELECT INBOX (QRESYNC (67890007 20050715194045000))", "SELECT", &Select{Mailbox: "INBOX",
		QResync: &QResync{UIDValidity: 67890007, ModSeq: 20050715194045000}}},
	{"a SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541))", "SELECT", &Select{Mailbox: "INBOX",
		QResync: &QResync{UIDValidity: 67890007, ModSeq: 90060115194045000, KnownUIDs: uids("41:211,214:541")}}},
	{"a SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976,29979:29997)))", "SELECT",
		&Select{Mailbox: "INBOX", QResync: &QResync{UIDValidity: 67890007, ModSeq: 90060115194045000, KnownUIDs: uids("1:29997"),
			SeqMatch: &SeqMatch{SeqNums: seqs("5000,7500,9000,9990:9999"), UIDs: uids("15000,22500,27000,29970,29973,29976,29979:29997")}}}},
	{"a SELECT INBOX (QRESYNC (1 2 (3 4)))", "SELECT", &Select{Mailbox: "INBOX",
		QResync: &QResync{UIDValidity: 1, ModSeq: 2, SeqMatch: &SeqMatch{SeqNums: seqs("3"), UIDs: uids("4")}}}},
	{"a CREATE foo", "CREATE", &Create{Mailbox: "foo"}},
	{`a CREATE "My Drafts" (USE (\Drafts))`, "CREATE", &Create{Mailbox: "My Drafts", Options: imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrDrafts}}}},
	{"a DELETE foo", "DELETE", &MailboxArg{"foo"}},
	{"a SUBSCRIBE foo", "SUBSCRIBE", &MailboxArg{"foo"}},
	{"a UNSUBSCRIBE foo", "UNSUBSCRIBE", &MailboxArg{"foo"}},
	{"a GETQUOTAROOT INBOX", "GETQUOTAROOT", &MailboxArg{"INBOX"}},
	{"a RENAME a b", "RENAME", &Rename{"a", "b"}},
	{`a LIST "" *`, "LIST", &List{Patterns: []string{"*"}}},
	{`a LIST "" !#$$&'+,-.0123456789:;<=>?@^_` + "`" + `|[}%*`, "LIST", &List{Patterns: []string{"!#$$&'+,-.0123456789:;<=>?@^_`|[}%*"}}},
	{`a LIST (SUBSCRIBED RECURSIVEMATCH) "" (% foo/*) RETURN (CHILDREN STATUS (MESSAGES UNSEEN HIGHESTMODSEQ) SPECIAL-USE)`, "LIST", &List{Extended: true,
		Patterns: []string{"%", "foo/*"}, Options: imap.ListOptions{SelectSubscribed: true, SelectRecursiveMatch: true,
			ReturnChildren: true, ReturnSpecialUse: true, ReturnStatus: &imap.StatusOptions{NumMessages: true, NumUnseen: true, HighestModSeq: true}}}},
	{`a LIST (SPECIAL-USE) "" *`, "LIST", &List{Extended: true, Patterns: []string{"*"}, Options: imap.ListOptions{SelectSpecialUse: true}}},
	{`a LIST "" % RETURN (SUBSCRIBED)`, "LIST", &List{Extended: true, Patterns: []string{"%"}, Options: imap.ListOptions{ReturnSubscribed: true}}},
	{`a LIST "" ("") RETURN ()`, "LIST", &List{Extended: true, Patterns: []string{""}}},
	{`a LIST () "" ""`, "LIST", &List{Extended: true, Patterns: []string{""}}},
	{`a LSUB "" %`, "LSUB", &List{LSUB: true, Patterns: []string{"%"}}},
	{"a STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ APPENDLIMIT)", "STATUS", &Status{Mailbox: "INBOX",
		Options: imap.StatusOptions{NumMessages: true, NumRecent: true, UIDNext: true, UIDValidity: true, NumUnseen: true, NumDeleted: true, Size: true, HighestModSeq: true, AppendLimit: true}}},
	{"a FETCH 1:* (FLAGS)", "FETCH", &Fetch{NumSet: seqs("1:*"), Options: imap.FetchOptions{Flags: true}}},
	{"a UID FETCH 1:* (FLAGS)", "UID FETCH", &Fetch{UID: true, NumSet: uids("1:*"), Options: imap.FetchOptions{Flags: true, UID: true}}},
	{"a FETCH 2 fast", "FETCH", &Fetch{NumSet: seqs("2"), Options: imap.FetchOptions{Flags: true, InternalDate: true, RFC822Size: true}}},
	{"a FETCH 2 FULL", "FETCH", &Fetch{NumSet: seqs("2"), Options: imap.FetchOptions{Flags: true, InternalDate: true, RFC822Size: true, Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{}}}},
	{"a FETCH 3,1,2 (UID BODYSTRUCTURE MODSEQ)", "FETCH", &Fetch{NumSet: seqs("1:3"), Options: imap.FetchOptions{UID: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}, ModSeq: true}}},
	{"a FETCH 1 (BODY[] BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.100> BODY[2.MIME] body[TEXT] BODY[3])", "FETCH", &Fetch{NumSet: seqs("1"), Options: imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{
		{}, {Part: []int{1, 2}, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"From", "To"}, Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: 100}},
		{Part: []int{2}, Specifier: imap.PartSpecifierMIME}, {Specifier: imap.PartSpecifierText}, {Part: []int{3}}}}}},
	{"a FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (Received)]", "FETCH", &Fetch{NumSet: seqs("1"), Options: imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{
		{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"Received"}, Peek: true}}}}},
	{"a FETCH 1 (BINARY[1]<5.10> BINARY.PEEK[] BINARY.SIZE[2])", "FETCH", &Fetch{NumSet: seqs("1"), Options: imap.FetchOptions{
		BinarySection:     []*imap.FetchItemBinarySection{{Part: []int{1}, Partial: &imap.SectionPartial{Offset: 5, Size: 10}}, {Peek: true}},
		BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{2}}}}}},
	{"a FETCH 1 (RFC822 RFC822.HEADER RFC822.TEXT)", "FETCH", &Fetch{NumSet: seqs("1"), RFC822: RFC822Items{true, true, true}}},
	{"a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)", "UID FETCH", &Fetch{UID: true, NumSet: uids("1:*"), Vanished: true,
		Options: imap.FetchOptions{Flags: true, UID: true, ChangedSince: 12345}}},
	{"a FETCH $ (FLAGS)", "FETCH", &Fetch{NumSet: imap.SearchRes(), Options: imap.FetchOptions{Flags: true}}},
	{"a STORE 1:3 +FLAGS (\\seen $Junk)", "STORE", &Store{NumSet: seqs("1:3"), Flags: imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen, "$Junk"}}}},
	{"a UID STORE 5 (UNCHANGEDSINCE 320162338) -FLAGS.SILENT \\Deleted", "UID STORE", &Store{UID: true, NumSet: uids("5"),
		Flags: imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, Options: imap.StoreOptions{UnchangedSince: 320162338}, Conditional: true}},
	{"a STORE 1 FLAGS ()", "STORE", &Store{NumSet: seqs("1"), Flags: imap.StoreFlags{Op: imap.StoreFlagsSet, Flags: []imap.Flag{}}}},
	{"a COPY 1:2 Trash", "COPY", &Copy{NumSet: seqs("1:2"), Mailbox: "Trash"}},
	{"a UID MOVE 7 Trash", "UID MOVE", &Copy{UID: true, Move: true, NumSet: uids("7"), Mailbox: "Trash"}},
	{"a SEARCH ALL", "SEARCH", &Search{}},
	{"a SEARCH RETURN () 1000", "SEARCH", &Search{Return: &imap.SearchOptions{ReturnAll: true}, Criteria: imap.SearchCriteria{SeqNum: []imap.SeqSet{seqs("1000")}}}},
	{"a UID SEARCH RETURN (MIN MAX COUNT SAVE) CHARSET utf-8 UNSEEN", "UID SEARCH", &Search{UID: true, Charset: "UTF-8",
		Return: &imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true, ReturnSave: true}, Criteria: imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}}},
	{`a SEARCH FROM user-from@domain.org SINCE 1-Feb-1994 NOT (SEEN DELETED) OR SMALLER 10 LARGER 20 HEADER X-Foo "bar baz"`, "SEARCH", &Search{Criteria: imap.SearchCriteria{
		Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "user-from@domain.org"}, {Key: "X-Foo", Value: "bar baz"}},
		Since:  day(1994, 2, 1),
		Not:    []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagSeen, imap.FlagDeleted}}},
		Or:     [][2]imap.SearchCriteria{{{Smaller: 10}, {Larger: 20}}}}}},
	{`a SEARCH ON "12-Mar-2020" SENTON 12-Mar-2020 SENTBEFORE 1-Jan-2021 BEFORE 1-Jan-2021`, "SEARCH", &Search{Criteria: imap.SearchCriteria{
		Since: day(2020, 3, 12), Before: day(2020, 3, 13), SentSince: day(2020, 3, 12), SentBefore: day(2020, 3, 13)}}},
	{"a SEARCH RECENT NEW OLD KEYWORD $Junk UNKEYWORD foo", "SEARCH", &Search{Criteria: imap.SearchCriteria{
		Flag: []imap.Flag{FlagRecent, FlagRecent, "$Junk"}, NotFlag: []imap.Flag{imap.FlagSeen, FlagRecent, "foo"}}}},
	{`a SEARCH MODSEQ "/flags/\\draft" all 620162338 UID 1:5 $ BODY x TEXT {1+}` + "\r\ny", "SEARCH", &Search{Criteria: imap.SearchCriteria{
		ModSeq: &imap.SearchCriteriaModSeq{ModSeq: 620162338, MetadataName: `/flags/\draft`, MetadataType: imap.SearchCriteriaMetadataAll},
		UID:    []imap.UIDSet{uids("1:5"), imap.SearchRes()}, Body: []string{"x"}, Text: []string{"y"}}}},
	{"a SEARCH MODSEQ 5", "SEARCH", &Search{Criteria: imap.SearchCriteria{ModSeq: &imap.SearchCriteriaModSeq{ModSeq: 5}}}},
	{"a SORT (REVERSE DATE DISPLAYFROM) UTF-8 ALL", "SORT", &Sort{Keys: []SortCriterion{{SortDate, true}, {SortDisplayFrom, false}}, Charset: "UTF-8"}},
	{"a UID SORT RETURN (COUNT) (SUBJECT) US-ASCII SEEN", "UID SORT", &Sort{UID: true, Return: &imap.SearchOptions{ReturnCount: true},
		Keys: []SortCriterion{{SortSubject, false}}, Charset: "US-ASCII", Criteria: imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}}},
	{"a THREAD REFERENCES UTF-8 ALL", "THREAD", &Thread{Algorithm: imap.ThreadReferences, Charset: "UTF-8"}},
	{"a UID THREAD orderedsubject UTF-8 1:5", "UID THREAD", &Thread{UID: true, Algorithm: imap.ThreadOrderedSubject, Charset: "UTF-8", Criteria: imap.SearchCriteria{SeqNum: []imap.SeqSet{seqs("1:5")}}}},
	{"a ENABLE condstore QRESYNC", "ENABLE", &Enable{Caps: []imap.Cap{"CONDSTORE", "QRESYNC"}}},
	{`a ID ("name" "sodr" "version" NIL)`, "ID", &ID{Fields: []IDField{{"name", str("sodr")}, {"version", nil}}}},
	{"a ID NIL", "ID", &ID{}},
	{"a COMPRESS deflate", "COMPRESS", &Compress{Mechanism: "DEFLATE"}},
	{`a GETQUOTA ""`, "GETQUOTA", &QuotaRoot{""}},
	{`a SETQUOTA "" (STORAGE 512 MESSAGE 1000)`, "SETQUOTA", &SetQuota{Limits: []QuotaLimit{{"STORAGE", 512}, {"MESSAGE", 1000}}}},
}

func TestReadCommand(t *testing.T) {
	for _, tc := range validCommands {
		t.Run(tc.in, func(t *testing.T) {
			res, _ := readAll(t, tc.in+"\r\n", Limits{})
			if len(res) != 1 || res[0].err != nil {
				t.Fatalf("got %+v", res)
			}
			got := res[0].cmd
			if got.Tag != "a" || got.Name != tc.name {
				t.Fatalf("tag %q name %q, want a %q", got.Tag, got.Name, tc.name)
			}
			if !reflect.DeepEqual(got.Args, tc.args) {
				t.Fatalf("args\n got %#v\nwant %#v", got.Args, tc.args)
			}
		})
	}
}

func TestAppend(t *testing.T) {
	in := "a APPEND saved-messages (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {11}\r\nhello world (\\Draft) ~{3}\r\na\x00b {0+}\r\n\r\nb NOOP\r\n"
	r := NewReader(bufio.NewReader(strings.NewReader(in)), Limits{}, func() error { return nil })
	cmd, err := r.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	a := cmd.Args.(*Append)
	if a.Mailbox != "saved-messages" {
		t.Fatalf("mailbox %q", a.Mailbox)
	}
	var bodies []string
	for {
		m, err := a.Next()
		if err != nil {
			t.Fatal(err)
		}
		if m == nil {
			break
		}
		b, _ := io.ReadAll(m.Body)
		bodies = append(bodies, string(b))
		switch len(bodies) {
		case 1:
			want := time.Date(1994, 2, 7, 21, 52, 25, 0, time.FixedZone("", -8*3600))
			if !m.Options.Time.Equal(want) || !reflect.DeepEqual(m.Options.Flags, []imap.Flag{imap.FlagSeen}) || m.Binary {
				t.Fatalf("first message %+v", m)
			}
		case 2:
			if !m.Binary || !reflect.DeepEqual(m.Options.Flags, []imap.Flag{imap.FlagDraft}) {
				t.Fatalf("second message %+v", m)
			}
		}
	}
	if want := []string{"hello world", "a\x00b", ""}; !reflect.DeepEqual(bodies, want) {
		t.Fatalf("bodies %q, want %q", bodies, want)
	}
	cmd, err = r.ReadCommand()
	if err != nil || cmd.Name != "NOOP" {
		t.Fatalf("after APPEND: %v %v", cmd, err)
	}
}

// TestAppendAbandoned checks that a session may stop reading an APPEND
// (after an error of its own) and the next command is still found.
func TestAppendAbandoned(t *testing.T) {
	in := "a APPEND INBOX {5+}\r\nhello {5+}\r\nworld\r\nb NOOP\r\n"
	r := NewReader(bufio.NewReader(strings.NewReader(in)), Limits{}, nil)
	cmd, err := r.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	m, err := cmd.Args.(*Append).Next()
	if err != nil || m.Size != 5 {
		t.Fatalf("%v %v", m, err)
	}
	cmd, err = r.ReadCommand()
	if err != nil || cmd.Name != "NOOP" || cmd.Tag != "b" {
		t.Fatalf("after abandoned APPEND: %+v %v", cmd, err)
	}
}

// TestContinuation checks that "+" is asked for synchronizing literals
// only, after their size is accepted.
func TestContinuation(t *testing.T) {
	for _, tc := range []struct {
		in    string
		conts int
	}{
		{"a LOGIN {3}\r\njoe {4}\r\npass\r\n", 2},
		{"a LOGIN {3+}\r\njoe {4}\r\npass\r\n", 1},
		{"a LOGIN {3+}\r\njoe {4+}\r\npass\r\n", 0},
		{"a LOGIN {99999999}\r\nb NOOP\r\n", 0},
		{"a APPEND INBOX {5}\r\nhello\r\n", 1},
	} {
		_, conts := readAll(t, tc.in, Limits{})
		if conts != tc.conts {
			t.Errorf("%q: %d continuation requests, want %d", tc.in, conts, tc.conts)
		}
	}
}

// badInput are malformed, oversized and hostile commands: the error, and
// the command read after it (recovery), or fatal.
var badInput = []struct {
	in    string
	lim   Limits
	text  string // in the error text
	typ   imap.StatusResponseType
	code  imap.ResponseCode
	fatal bool
	next  string // name of the next command read, "" for none
}{
	{in: "a FOO\r\nb NOOP\r\n", text: "Unknown command", next: "NOOP"},
	{in: "a UID NOOP\r\nb NOOP\r\n", text: "Unknown command", next: "NOOP"},
	{in: "+a NOOP\r\nb NOOP\r\n", text: "Invalid tag", next: "NOOP"},
	{in: "a\r\nb NOOP\r\n", text: "Missing command", next: "NOOP"},
	{in: "a{3} NOOP\r\nb NOOP\r\n", text: "Invalid tag", next: "NOOP"},
	// A literal announced on a bad line is skipped, never run as a command.
	{in: "a NOOP x{11+}\r\nb LOGOUT\r\n\r\nc NOOP\r\n", text: "Unexpected arguments", next: "NOOP"},
	{in: "a NOOP x{11}\r\nb LOGOUT\r\n", text: "Unexpected arguments", next: "LOGOUT"},
	{in: "a LOGIN \"joe\r\nb NOOP\r\n", text: "Unterminated quoted string", next: "NOOP"},
	{in: "a LOGIN \"jo\\e\" x\r\nb NOOP\r\n", text: "Invalid escape", next: "NOOP"},
	{in: "a LOGIN \"jo\x00e\" x\r\nb NOOP\r\n", text: "NUL octet", next: "NOOP"},
	{in: "a LOGIN {3+}\r\nj\x00e x\r\nb NOOP\r\n", text: "NUL octet in literal", next: "NOOP"},
	{in: "a LOGIN joe\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a LOGIN joe pass extra\r\nb NOOP\r\n", text: "Unexpected arguments", next: "NOOP"},
	{in: "a LOGIN {3} x\r\nb NOOP\r\n", text: "Invalid literal", next: "NOOP"},
	{in: "a LOGIN ~{3}\r\nb NOOP\r\n", text: "literal8 not allowed", next: "NOOP"},
	{in: "a FETCH 1:x (FLAGS)\r\nb NOOP\r\n", text: "Invalid sequence set", next: "NOOP"},
	{in: "a FETCH 0 (FLAGS)\r\nb NOOP\r\n", text: "Invalid sequence set", next: "NOOP"},
	{in: "a FETCH 4294967296 (FLAGS)\r\nb NOOP\r\n", text: "Invalid sequence set", next: "NOOP"},
	{in: "a FETCH 1, (FLAGS)\r\nb NOOP\r\n", text: "trailing", next: "NOOP"},
	{in: "a FETCH 1 (FLAGS\r\nb NOOP\r\n", text: "Missing ')'", next: "NOOP"},
	{in: "a FETCH 1 (FOO)\r\nb NOOP\r\n", text: "Unknown fetch item FOO", next: "NOOP"},
	{in: "a FETCH 1 BODY[HEADER.FIELDS ()]\r\nb NOOP\r\n", text: "Empty header field list", next: "NOOP"},
	{in: "a FETCH 1 BODY[MIME]\r\nb NOOP\r\n", text: "MIME needs", next: "NOOP"},
	{in: "a FETCH 1 BODY[1]<0.0>\r\nb NOOP\r\n", text: "zero", next: "NOOP"},
	{in: "a FETCH 1 BODY.PEEK\r\nb NOOP\r\n", text: "needs a section", next: "NOOP"},
	{in: "a FETCH 1 (FLAGS) (VANISHED)\r\nb NOOP\r\n", text: "VANISHED needs", next: "NOOP"},
	{in: "a UID FETCH 1 (FLAGS) (CHANGEDSINCE 0)\r\nb NOOP\r\n", text: "must not be zero", next: "NOOP"},
	{in: "a UID FETCH 1 (FLAGS) (CHANGEDSINCE 9223372036854775808)\r\nb NOOP\r\n", text: "Number too large", next: "NOOP"},
	{in: "a UID FETCH 1 (FLAGS) (CHANGEDSINCE -1)\r\nb NOOP\r\n", text: "Expected a number", next: "NOOP"},
	{in: "a STORE 1 FLAGS.FOO (\\Seen)\r\nb NOOP\r\n", text: "Unknown STORE item", next: "NOOP"},
	{in: "a STORE 1 (UNCHANGEDSINCE x) FLAGS (\\Seen)\r\nb NOOP\r\n", text: "Expected a number", next: "NOOP"},
	{in: "a SEARCH FOO\r\nb NOOP\r\n", text: "Unknown search key FOO", next: "NOOP"},
	{in: "a SEARCH SINCE 31-Feb-2020\r\nb NOOP\r\n", text: "Invalid date", next: "NOOP"},
	{in: "a SEARCH RETURN (BOGUS) ALL\r\nb NOOP\r\n", text: "Unknown RETURN option", next: "NOOP"},
	{in: "a SEARCH MODSEQ x\r\nb NOOP\r\n", text: "Expected a number", next: "NOOP"},
	{in: "a SEARCH MODSEQ \"/flags/x\" bogus 5\r\nb NOOP\r\n", text: "Invalid MODSEQ entry type", next: "NOOP"},
	{in: "a SEARCH " + strings.Repeat("NOT ", 100) + "ALL\r\nb NOOP\r\n", text: "Too deeply nested", next: "NOOP"},
	{in: "a SEARCH " + strings.Repeat("OR ALL ", 100) + "ALL\r\nb NOOP\r\n", text: "Too deeply nested", next: "NOOP"},
	{in: "a SEARCH " + strings.Repeat("(", 100) + "ALL\r\nb NOOP\r\n", text: "Too deeply nested", next: "NOOP"},
	{in: "a SEARCH " + strings.Repeat("SEEN ", 30000) + "\r\nb NOOP\r\n", lim: Limits{Line: 1 << 20}, text: "Too many arguments", next: "NOOP"},
	{in: "a SORT () UTF-8 ALL\r\nb NOOP\r\n", text: "Empty sort criteria", next: "NOOP"},
	{in: "a SORT (FOO) UTF-8 ALL\r\nb NOOP\r\n", text: "Unknown sort key", next: "NOOP"},
	{in: "a SORT (DATE) ALL\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a SELECT INBOX (QRESYNC (0 1))\r\nb NOOP\r\n", text: "must not be zero", next: "NOOP"},
	{in: "a SELECT INBOX (QRESYNC (1 1 1:*))\r\nb NOOP\r\n", text: "must not contain", next: "NOOP"},
	{in: "a SELECT INBOX (FOO)\r\nb NOOP\r\n", text: "Unknown SELECT parameter", next: "NOOP"},
	{in: "a LIST (RECURSIVEMATCH) \"\" *\r\nb NOOP\r\n", text: "RECURSIVEMATCH needs", next: "NOOP"},
	{in: "a LIST (FOO) \"\" *\r\nb NOOP\r\n", text: "Unknown LIST selection option", next: "NOOP"},
	{in: "a LIST \"\" * RETURN (FOO)\r\nb NOOP\r\n", text: "Unknown LIST return option", next: "NOOP"},
	{in: "a STATUS INBOX ()\r\nb NOOP\r\n", text: "Empty STATUS item list", next: "NOOP"},
	{in: "a STATUS INBOX (FOO)\r\nb NOOP\r\n", text: "Unknown STATUS item", next: "NOOP"},
	{in: "a ID (\"" + strings.Repeat("k", 31) + "\" \"v\")\r\nb NOOP\r\n", text: "ID field too long", next: "NOOP"},
	{in: "a ID (\"k\" \"" + strings.Repeat("v", 1025) + "\")\r\nb NOOP\r\n", text: "ID field too long", next: "NOOP"},
	{in: "a ID (" + strings.Repeat("\"k\" \"v\" ", 31) + ")\r\nb NOOP\r\n", text: "Too many ID fields", next: "NOOP"},
	{in: "a AUTHENTICATE PLAIN !!!\r\nb NOOP\r\n", text: "Invalid base64", next: "NOOP"},
	{in: "a CREATE x (USE (Drafts))\r\nb NOOP\r\n", text: "Invalid special-use", next: "NOOP"},
	{in: "a APPEND INBOX (\\Seen) \"bad date\" {1}\r\nb NOOP\r\n", text: "Invalid date-time", next: "NOOP"},
	{in: "a APPEND INBOX\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	// Every command refuses missing and extra arguments.
	{in: "a CAPABILITY x\r\nb NOOP\r\n", text: "Unexpected arguments", next: "NOOP"},
	{in: "a IDLE x\r\nb NOOP\r\n", text: "Unexpected arguments", next: "NOOP"},
	{in: "a NAMESPACE x\r\nb NOOP\r\n", text: "Unexpected arguments", next: "NOOP"},
	{in: "a EXPUNGE 1\r\nb NOOP\r\n", text: "Unexpected arguments", next: "NOOP"},
	{in: "a UID EXPUNGE\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a UID EXPUNGE 1:x\r\nb NOOP\r\n", text: "Invalid sequence set", next: "NOOP"},
	{in: "a SELECT\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a EXAMINE INBOX (QRESYNC (1 2 (1:2)))\r\nb NOOP\r\n", text: "Expected a space", next: "NOOP"},
	{in: "a SELECT INBOX (QRESYNC (1 2) QRESYNC (1 2))\r\nb NOOP\r\n", text: "QRESYNC given twice", next: "NOOP"},
	{in: "a CREATE\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a CREATE x (FOO (\\Drafts))\r\nb NOOP\r\n", text: "Unknown CREATE parameter", next: "NOOP"},
	{in: "a DELETE\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a RENAME a\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a SUBSCRIBE a b\r\nb NOOP\r\n", text: "Unexpected arguments", next: "NOOP"},
	{in: "a LSUB \"\"\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a LSUB \"\" (%)\r\nb NOOP\r\n", text: "Expected a mailbox pattern", next: "NOOP"},
	{in: "a LIST \"\" ()\r\nb NOOP\r\n", text: "Empty pattern list", next: "NOOP"},
	{in: "a LIST \"\" % RETURN (STATUS ())\r\nb NOOP\r\n", text: "Empty STATUS item list", next: "NOOP"},
	{in: "a STATUS INBOX\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a COPY 1\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a MOVE x Trash\r\nb NOOP\r\n", text: "Expected a sequence set", next: "NOOP"},
	{in: "a COPY $x Trash\r\nb NOOP\r\n", text: "Invalid sequence set", next: "NOOP"},
	{in: "a STORE 1 +FLAGS\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a STORE 1 (FOO 1) FLAGS (\\Seen)\r\nb NOOP\r\n", text: "Unknown STORE modifier", next: "NOOP"},
	{in: "a FETCH 1 (FLAGS) (FOO)\r\nb NOOP\r\n", text: "Unknown FETCH modifier", next: "NOOP"},
	{in: "a FETCH 1 BINARY[1.TEXT]\r\nb NOOP\r\n", text: "Expected ']'", next: "NOOP"},
	{in: "a FETCH 1 BODY[1.FOO]\r\nb NOOP\r\n", text: "Invalid section", next: "NOOP"},
	{in: "a SEARCH\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a SEARCH MODSEQ 5 MODSEQ 6\r\nb NOOP\r\n", text: "MODSEQ given twice", next: "NOOP"},
	{in: "a SEARCH MODSEQ 99999999999999999999\r\nb NOOP\r\n", text: "Number too large", next: "NOOP"},
	{in: "a SEARCH OR SEEN\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a SEARCH LARGER -1\r\nb NOOP\r\n", text: "Expected a number", next: "NOOP"},
	{in: "a SORT (DATE) UTF-8\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a SORT (REVERSE) UTF-8 ALL\r\nb NOOP\r\n", text: "Expected a space", next: "NOOP"},
	{in: "a SORT (" + strings.Repeat("DATE ", 30000) + ") UTF-8 ALL\r\nb NOOP\r\n", lim: Limits{Line: 1 << 20}, text: "Too many arguments", next: "NOOP"},
	{in: "a THREAD REFERENCES\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a ENABLE\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a ID\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a ID (\"k\")\r\nb NOOP\r\n", text: "Expected a space", next: "NOOP"},
	{in: "a ID FOO\r\nb NOOP\r\n", text: "Expected a list or NIL", next: "NOOP"},
	{in: "a COMPRESS\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a GETQUOTA\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a SETQUOTA \"\" (STORAGE)\r\nb NOOP\r\n", text: "Expected a space", next: "NOOP"},
	{in: "a SETQUOTA \"\" (STORAGE x)\r\nb NOOP\r\n", text: "Expected a number", next: "NOOP"},
	{in: "a AUTHENTICATE\r\nb NOOP\r\n", text: "Missing arguments", next: "NOOP"},
	{in: "a APPEND INBOX {3+}\r\nabc x\r\nb NOOP\r\n", text: "Expected a message literal", next: "NOOP"},
	{in: "a NO\x00OP\r\nb NOOP\r\n", text: "NUL octet in command", next: "NOOP"},
	{in: "a NOOP x\rb LOGOUT\r\nb NOOP\r\n", text: "CR without LF in command", next: "NOOP"},
	{in: "a LOGIN {1+}\r\nx \"p\rw\"\r\nb NOOP\r\n", text: "CR in quoted string", next: "NOOP"},
	{in: "a LOGOUT\xe9\r\nb NOOP\r\n", text: "Invalid command name", next: "NOOP"},
	{in: "a UID FETCH\xe9 1 FLAGS\r\nb NOOP\r\n", text: "Invalid command name", next: "NOOP"},
	{in: "a\xe9 NOOP\r\nb NOOP\r\n", text: "Invalid tag", next: "NOOP"},
	// Bounds.
	{in: "a LOGIN " + strings.Repeat("x", 70000) + " y\r\nb NOOP\r\n", text: "Command line too long", code: imap.ResponseCodeTooBig, next: "NOOP"},
	{in: "a LOGIN " + strings.Repeat("x", 70000) + " {3+}\r\nabc\r\nb NOOP\r\n", text: "Command line too long", code: imap.ResponseCodeTooBig, next: "NOOP"},
	{in: "a LOGIN {70000}\r\nb NOOP\r\n", text: "Literal too large", code: imap.ResponseCodeTooBig, next: "NOOP"},
	{in: "a APPEND INBOX {70}\r\nb NOOP\r\n", lim: Limits{Append: 64}, text: "Literal too large", typ: imap.StatusResponseTypeNo, code: imap.ResponseCodeTooBig, next: "NOOP"},
	{in: "a LOGIN {70000+}\r\nb NOOP\r\n", text: "Non-synchronizing literal too large", code: imap.ResponseCodeTooBig, fatal: true},
	{in: "a APPEND INBOX {5000+}\r\n", lim: Limits{LiteralMinus: true}, text: "LITERAL-", code: imap.ResponseCodeTooBig, fatal: true},
	{in: "a NOOP {99999999999+}\r\n", text: "too large to skip", code: imap.ResponseCodeTooBig, fatal: true},
	{in: "a LOGIN {60000+}\r\n" + strings.Repeat("x", 60000) + " {60000+}\r\n" + strings.Repeat("x", 60000) + "\r\nb NOOP\r\n",
		lim: Limits{Command: 100000}, text: "Non-synchronizing literal too large", code: imap.ResponseCodeTooBig, fatal: true},
	// A synchronizing literal over what is left of the command is refused
	// before the continuation request: the stream stays usable.
	{in: "a LOGIN {60000+}\r\n" + strings.Repeat("x", 60000) + " {60000}\r\nb NOOP\r\n",
		lim: Limits{Command: 100000}, text: "Command too long", code: imap.ResponseCodeTooBig, next: "NOOP"},
}

func TestReadCommandErrors(t *testing.T) {
	for _, tc := range badInput {
		name := tc.in
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			res, _ := readAll(t, tc.in, tc.lim)
			if len(res) == 0 || res[0].err == nil {
				t.Fatalf("no error: %+v", res)
			}
			var e *Error
			if !errors.As(res[0].err, &e) {
				t.Fatalf("error %v is not an *Error", res[0].err)
			}
			typ := tc.typ
			if typ == "" {
				typ = imap.StatusResponseTypeBad
			}
			code := tc.code
			if code == "" {
				code = imap.ResponseCodeClientBug
			}
			if !strings.Contains(e.Text, tc.text) || e.Type != typ || e.Code != code || e.Fatal != tc.fatal {
				t.Fatalf("got %+v, want text %q type %s code %s fatal %v", e, tc.text, typ, code, tc.fatal)
			}
			if e.Tag != "a" && e.Tag != "*" {
				t.Fatalf("tag %q", e.Tag)
			}
			var next string
			if len(res) > 1 && res[1].cmd != nil {
				next = res[1].cmd.Name
			}
			if tc.fatal {
				if len(res) != 1 {
					t.Fatalf("read on after a fatal error: %+v", res[1:])
				}
			} else if next != tc.next {
				t.Fatalf("next command %q, want %q (%+v)", next, tc.next, res)
			}
		})
	}
}

func TestReadLine(t *testing.T) {
	r := NewReader(bufio.NewReader(strings.NewReader("DONE\r\n"+strings.Repeat("x", 100)+"\r\nb NOOP\r\n")), Limits{Line: 50}, nil)
	if l, err := r.ReadLine(); err != nil || l != "DONE" {
		t.Fatalf("%q %v", l, err)
	}
	if _, err := r.ReadLine(); err == nil {
		t.Fatal("long line accepted")
	}
	if cmd, err := r.ReadCommand(); err != nil || cmd.Name != "NOOP" {
		t.Fatalf("%v %v", cmd, err)
	}
}
