package imap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/internal/testdovecot"
	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// oracleMessage is one message of the oracle corpus with the flags and
// internal date both servers get.
type oracleMessage struct {
	raw   []byte
	flags []string
	date  time.Time
}

// readMbox splits an mbox (imaptest's format) into CRLF messages.
func readMbox(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	var cur []string
	flush := func() {
		for len(cur) > 0 && cur[len(cur)-1] == "" {
			cur = cur[:len(cur)-1]
		}
		if len(cur) > 0 {
			msgs = append(msgs, []byte(strings.Join(cur, "\r\n")+"\r\n"))
		}
		cur = nil
	}
	prevBlank := true
	for _, l := range strings.Split(string(b), "\n") {
		if prevBlank && strings.HasPrefix(l, "From ") {
			flush()
			prevBlank = false
			continue
		}
		cur = append(cur, l)
		prevBlank = l == ""
	}
	flush()
	return msgs
}

// oracleCorpus is imaptest's search and sort message sets, the sortthread
// corpus and our own messages, with a flag pattern and internal dates
// five hours apart (so that several fall on one day).
func oracleCorpus(t testing.TB) []oracleMessage {
	t.Helper()
	var raws [][]byte
	for _, glob := range []string{"testdata/search/search-*.mbox", "testdata/search/sort-*.mbox"} {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			raws = append(raws, readMbox(t, f)...)
		}
	}
	for _, glob := range []string{"testdata/search/own-*.eml", "sortthread/testdata/corpus/*.eml"} {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			raws = append(raws, bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")))
		}
	}
	if len(raws) < 100 {
		t.Fatalf("oracle corpus has %d messages", len(raws))
	}
	base := time.Date(2024, 3, 9, 20, 0, 0, 0, time.UTC)
	out := make([]oracleMessage, len(raws))
	for i, raw := range raws {
		m := oracleMessage{raw: raw, date: base.Add(time.Duration(i) * 5 * time.Hour)}
		for _, fl := range []struct {
			name     string
			mod, rem int
		}{{`\Seen`, 3, 0}, {`\Flagged`, 4, 1}, {`\Deleted`, 5, 2}, {`\Answered`, 6, 3}, {`\Draft`, 7, 4}, {`$Work`, 4, 0}} {
			if i%fl.mod == fl.rem {
				m.flags = append(m.flags, fl.name)
			}
		}
		out[i] = m
	}
	return out
}

// oracle is the same folders in a private Dovecot and in a store.
type oracle struct {
	t   *testing.T
	dc  *testdovecot.Conn
	mb  *store.Mailbox
	f   *store.Folder
	res goimap.UIDSet
	sc  *sortCache
}

func (o *oracle) appendBoth(folder string, msgs []oracleMessage) {
	o.t.Helper()
	ctx := context.Background()
	for _, m := range msgs {
		cmd := fmt.Sprintf("APPEND %s (%s) %q", folder, strings.Join(m.flags, " "), m.date.Format("02-Jan-2006 15:04:05 -0700"))
		if _, err := o.dc.RunLiteral(cmd, m.raw); err != nil {
			o.t.Fatal(err)
		}
		if _, err := o.mb.Append(ctx, folder, bytes.NewReader(m.raw), store.AppendOptions{Flags: m.flags, InternalDate: m.date}); err != nil {
			o.t.Fatal(err)
		}
	}
}

// selectBoth selects folder on both sides (read-write: \Recent claimed).
func (o *oracle) selectBoth(folder string) {
	o.t.Helper()
	if o.f != nil {
		o.f.Close()
	}
	if _, err := o.dc.Run("SELECT " + folder); err != nil {
		o.t.Fatal(err)
	}
	f, err := o.mb.Select(context.Background(), folder, false)
	if err != nil {
		o.t.Fatal(err)
	}
	o.f = f
	// The oracle must number the messages as the store does.
	lines, err := o.dc.Run("FETCH 1:* (UID RFC822.SIZE)")
	if err != nil && f.Len() > 0 {
		o.t.Fatal(err)
	}
	msgs := f.Messages()
	if len(lines) != len(msgs) {
		o.t.Fatalf("%s: dovecot has %d messages, the store %d", folder, len(lines), len(msgs))
	}
	for i, l := range lines {
		want := fmt.Sprintf("%d FETCH (UID %d RFC822.SIZE %d)", i+1, msgs[i].UID, msgs[i].Size)
		if l != want {
			o.t.Fatalf("dovecot has %q, the store %q", l, want)
		}
	}
}

// parseCommand reads one command line (literals non-synchronizing) as the
// session will.
func parseCommand(line string) (*wire.Command, error) {
	r := wire.NewReader(bufio.NewReader(strings.NewReader(line+"\r\n")), wire.Limits{}, nil)
	return r.ReadCommand()
}

// ours answers a SEARCH, SORT or THREAD command line as the session will,
// in Dovecot's untagged form; a failure is "NO ..." or "BAD ...".
func (o *oracle) ours(line string) string {
	ctx := context.Background()
	cmd, err := parseCommand("t " + line)
	if err != nil {
		return "BAD " + err.Error()
	}
	status := func(err error) string {
		var ie *goimap.Error
		if errors.As(err, &ie) {
			return string(ie.Type) + " " + ie.Error()
		}
		return "NO " + err.Error()
	}
	msgs := o.f.Messages()
	nums := func(idx []int, uid bool) string {
		var b strings.Builder
		for _, i := range idx {
			n := uint32(i + 1)
			if uid {
				n = msgs[i].UID
			}
			b.WriteString(" " + strconv.Itoa(int(n)))
		}
		return b.String()
	}
	switch a := cmd.Args.(type) {
	case *wire.Search:
		idx, err := searchFolder(ctx, o.f, a.Charset, &a.Criteria, o.res)
		if err != nil {
			return status(err)
		}
		return "SEARCH" + nums(idx, a.UID)
	case *wire.Sort:
		idx, err := searchFolder(ctx, o.f, a.Charset, &a.Criteria, o.res)
		if err != nil {
			return status(err)
		}
		if idx, err = o.sc.sortFolder(ctx, o.f, idx, a.Keys); err != nil {
			return status(err)
		}
		return "SORT" + nums(idx, a.UID)
	case *wire.Thread:
		idx, err := searchFolder(ctx, o.f, a.Charset, &a.Criteria, o.res)
		if err != nil {
			return status(err)
		}
		threads, err := o.sc.threadFolder(ctx, o.f, idx, a.Algorithm, a.UID)
		if err != nil {
			return status(err)
		}
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		e := wire.NewEncoder(w)
		e.Thread(threads)
		e.Flush()
		return strings.TrimPrefix(strings.TrimRight(b.String(), "\r\n"), "* ")
	}
	return fmt.Sprintf("BAD unexpected %T", cmd.Args)
}

// dovecot answers the same command line: its untagged SEARCH, SORT or
// THREAD response, or "NO"/"BAD" with the tagged text.
func (o *oracle) dovecot(line, literal string) string {
	var lines []string
	var err error
	if literal != "" {
		lines, err = o.dc.RunLiteral(line, []byte(literal))
	} else {
		lines, err = o.dc.Run(line)
	}
	if err != nil {
		s := err.Error()
		for _, typ := range []string{" NO ", " BAD "} {
			if i := strings.Index(s, typ); i >= 0 {
				return strings.TrimSpace(typ) + " " + s[i+len(typ):]
			}
		}
		return "ERR " + s
	}
	for _, l := range lines {
		for _, name := range []string{"SEARCH", "SORT", "THREAD"} {
			if l == name || strings.HasPrefix(l, name+" ") {
				return strings.TrimRight(l, " ")
			}
		}
	}
	return "(nothing in " + strings.Join(lines, " | ") + ")"
}

// compare runs one command on both; answers must be equal, or both
// failures of the same kind.
func (o *oracle) compare(line string) {
	o.t.Helper()
	o.compareLiteral(line, "")
}

func (o *oracle) compareLiteral(line, literal string) {
	o.t.Helper()
	full := line
	if literal != "" {
		full = fmt.Sprintf("%s {%d+}\r\n%s", line, len(literal), literal)
	}
	want := o.dovecot(line, literal)
	got := o.ours(full)
	if strings.HasPrefix(want, "NO ") || strings.HasPrefix(want, "BAD ") {
		if kind := strings.Fields(want)[0]; !strings.HasPrefix(got, kind+" ") {
			o.t.Errorf("%s\n dovecot: %s\n ours:    %s", line, want, got)
		}
		return
	}
	if got != want {
		o.t.Errorf("%s\n dovecot: %s\n ours:    %s", line, want, got)
	}
}

// oracleSearches are SEARCH criteria: imaptest's search scripts' own
// (those that need no variables) and more of every key.
var oracleSearches = []string{
	// imaptest search-addresses
	"from user-from@domain.org", "to user-to@domain.org", "cc user-cc@domain.org", "bcc user-bcc@domain.org",
	"from realfrom", "to realto", "cc realcc", "bcc realbcc",
	`header from ""`, `header to ""`, `header cc ""`, `header bcc ""`,
	"from ser-fro", "to ser-t", "cc ser-c", "bcc ser-bc",
	"from ealfro", "to ealt", "cc ealc", "bcc ealbc",
	"from user-from1", "from user-from2",
	"to groupname", "to groupname2", "to groupuser1", "to groupuser2", "to groupuser3", "to groupuser4",
	// imaptest search-header
	`subject ""`, "subject hello", "subject beautiful", "subject world", `subject "hello beautiful"`,
	`subject "hello beautiful world"`, `subject "eautiful worl"`,
	`header subject ""`, `not header subject ""`, `header x-extra ""`, `not header x-extra ""`,
	"header x-extra hello", `header x-extra "hello beautiful"`, `header x-extra "eautiful head"`, `header x-extra "another"`,
	// imaptest search-body
	"body asdfghjkl", "body qwertyuiop", "body sdfghjk", "body wertyuio", "body xcvbn", "body zxcvbnm",
	"text asdfghjkl", "text qwertyuiop", "text sdfghjk", "text wertyuio", "text xcvbn", "text zxcvbnm",
	// imaptest search-date
	"sentbefore 24-mar-2007", "sentbefore 25-mar-2007", "sentbefore 26-mar-2007", "sentbefore 27-mar-2007",
	"senton 23-mar-2007", "senton 24-mar-2007", "senton 25-mar-2007", "senton 26-mar-2007",
	"1:7 sentsince 24-mar-2007", "1:7 sentsince 25-mar-2007", "1:7 not senton 25-mar-2007", "1:7 not sentbefore 26-mar-2007",
	"8:* senton 27-oct-2007", "8:* sentbefore 28-oct-2007", "8:* sentsince 28-oct-2007", "8:* not sentsince 28-oct-2007",
	"senton 04-mar-2024", "senton 05-mar-2024", "sentbefore 1-jan-1980", "sentsince 1-jan-2030", "not sentsince 1-jan-1971",
	// internal dates
	"before 12-mar-2024", "since 12-mar-2024", "on 12-mar-2024", "on 13-mar-2024", "since 20-mar-2024 before 22-mar-2024",
	"not on 10-mar-2024", "before 1-jan-2000",
	// sizes
	"larger 300", "smaller 300", "larger 300 smaller 600", "not larger 250", "or smaller 200 larger 1000", "larger 0", "smaller 1",
	// flags
	"all", "seen", "unseen", "answered", "unanswered", "deleted", "undeleted", "flagged", "unflagged", "draft", "undraft",
	"deleted flagged", "not seen deleted not flagged", "keyword $work", "unkeyword $work", "keyword $WORK",
	"keyword $nothere", "unkeyword $nothere", "recent", "new", "old", "not recent", "or recent seen", "new flagged", "not new",
	"seen unseen", "recent old",
	// sets
	"1:5", "*", "*:3", "4:2", "1,4,*", "1:3,5", "not 2,4", "uid 1:*", "uid *", "uid 3:1", "uid 1000:*", "uid 5,9:11,2",
	"2:4 uid 3:10", "or 1 uid 3", "1:1000", "1000", "uid 1000", "not 1:*",
	// boolean structure
	"or seen flagged", "or (seen flagged) (deleted not draft)", "not or seen not flagged",
	"or or seen flagged or deleted draft", "(or subject hello from bob) not larger 500", "not not seen",
	"or body zebra subject hello", "or from alice header x-tag second",
	// text keys, decoded
	"body foobarish", "body attachmentsecret", "text attachmentsecret", "body kangaroo", "text inner", "body zebra", "text zebra", "body uppercase",
	`to "doe, john"`, "to jane", "to roe", "cc team", "cc ann@example.org", "to undisclosed", "to first",
	"to second@example.com", "from nobody", `header x-tag "hello spaced"`, `header x-tag "hello   spaced"`,
	"subject quarterly", `subject "quarterly numbers"`, `subject "numbers folded"`, "text message-id", "text own2@example.net",
	`header message-id own1`, "header in-reply-to own1", `header references "own2@example.net"`, "body line", "body linebreak",
	`body "soft linebreak"`, "from (", `from "<"`, "from @", "text example.org", "body plain",
	"charset us-ascii body zebra",
	// Not compared: "not (seen flagged)" and "or not seen not flagged".
	// Dovecot 2.3 leaves out a message with \Seen and a keyword but no
	// \Flagged, though it answers "flagged" and "not (seen deleted)"
	// right.
}

// oracleUTF8 are criteria ending in a UTF-8 string, sent as a literal
// (Dovecot refuses 8-bit atoms).
var oracleUTF8 = [][2]string{
	{"body", "grüße"}, {"body", "GRÜSSE"}, {"body", "köln"}, {"text", "jörg"}, {"from", "jörg"}, {"from", "müller"},
	{"subject", "grüße"}, {"subject", "köln"}, {"body", "česky"}, {"body", "café"}, {"body", "crème"}, {"body", "brûlée"},
	{"subject", "café"}, {"subject", "café crème"}, {"text", "Bäcker"}, {"body", "bäcker"}, {"from", "émilie"},
	{"charset utf-8 body", "grüße"}, {"cc", "ÉMILIE"}, {"body", "ﬁle"},
}

var oracleSorts = []string{
	"(arrival)", "(reverse arrival)", "(arrival reverse size)", "(cc)", "(reverse cc)", "(cc reverse arrival)",
	"(date)", "(reverse date)", "(date reverse size)", "(displayfrom)", "(reverse displayfrom)", "(displayto)",
	"(reverse displayto)", "(from)", "(reverse from)", "(from reverse arrival)", "(size)", "(reverse size)",
	"(size reverse arrival)", "(subject)", "(reverse subject)", "(subject reverse size)", "(to)", "(reverse to)",
	"(to reverse arrival)",
}

// TestSearchOracle compares searchFolder, sortFolder and threadFolder with
// a private Dovecot on the same messages, flags and internal dates: every
// SEARCH criterion above, SORT and THREAD over all and over searches,
// MODSEQ, charsets, and errors.
func TestSearchOracle(t *testing.T) {
	srv := testdovecot.Start(t)
	dc := srv.Login(t)
	st := &store.Store{Root: t.TempDir(), Hostname: "oracle.test"}
	ctx := context.Background()
	mb, err := st.OpenMailbox(ctx, store.Account{Address: "oracle@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	o := &oracle{t: t, dc: dc, mb: mb, sc: newSortCache(0)}
	t.Cleanup(func() {
		if o.f != nil {
			o.f.Close()
		}
	})
	msgs := oracleCorpus(t)
	half := len(msgs) / 2
	// The first half is seen by one SELECT, so only the second half is
	// \Recent in the next.
	o.appendBoth("INBOX", msgs[:half])
	o.selectBoth("INBOX")
	if _, err := dc.Run("UNSELECT"); err != nil {
		t.Fatal(err)
	}
	o.appendBoth("INBOX", msgs[half:])
	o.selectBoth("INBOX")
	if n := o.f.NumRecent(); n != len(msgs)-half {
		t.Fatalf("store: %d recent, want %d", n, len(msgs)-half)
	}

	for _, c := range oracleSearches {
		o.compare("SEARCH " + c)
	}
	for _, c := range oracleUTF8 {
		o.compareLiteral("SEARCH "+c[0], c[1])
	}
	for _, c := range []string{"all", "seen", "from user-from@domain.org", "uid 3:*", "1:10"} {
		o.compare("UID SEARCH " + c)
	}
	for _, s := range oracleSorts {
		o.compare("SORT " + s + " UTF-8 ALL")
	}
	for _, c := range []string{"seen", "not deleted from bob", "or body zxcvbnm subject hello", "1:20"} {
		o.compare("SORT (subject date) US-ASCII " + c)
		o.compare("UID SORT (reverse date from) UTF-8 " + c)
	}
	for _, alg := range []string{"ORDEREDSUBJECT", "REFERENCES"} {
		o.compare("THREAD " + alg + " UTF-8 ALL")
		o.compare("UID THREAD " + alg + " UTF-8 ALL")
		o.compare("THREAD " + alg + " UTF-8 unseen")
	}
	// Charsets: a Latin-1 needle in a literal, an unknown charset.
	o.compareLiteral("SEARCH CHARSET ISO-8859-1 BODY", "gr\xfc\xdfe")
	o.compareLiteral("SEARCH CHARSET ISO-8859-1 FROM", "j\xf6rg")
	o.compare("SEARCH CHARSET X-NOSUCH BODY zebra")
	o.compare("SORT (date) X-NOSUCH ALL")
	o.compare("THREAD NOSUCHALG UTF-8 ALL")

	// MODSEQ: change some flags on both sides, then every message's
	// modseq is a threshold (the numbers differ, their order must not).
	if _, err := dc.Run("ENABLE CONDSTORE"); err != nil {
		t.Fatal(err)
	}
	for _, seqs := range [][]int{{3, 7, 11}, {5}, {7, 20, 21, 22}} {
		var set []string
		var uids []uint32
		for _, n := range seqs {
			set = append(set, strconv.Itoa(n))
			uids = append(uids, o.f.Messages()[n-1].UID)
		}
		if _, err := dc.Run("STORE " + strings.Join(set, ",") + " +FLAGS (\\Answered)"); err != nil {
			t.Fatal(err)
		}
		if _, err := o.f.StoreFlags(ctx, uids, store.FlagsAdd, []string{`\Answered`}, store.StoreOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := o.f.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	lines, err := dc.Run("FETCH 1:* (MODSEQ)")
	if err != nil {
		t.Fatal(err)
	}
	// Dovecot gives the appended messages one modseq, the store one
	// each, so only the changed messages are thresholds to compare.
	ours := o.f.Messages()
	var lowest uint64
	compared := 0
	for _, l := range lines {
		var seq int
		var dms uint64
		if _, err := fmt.Sscanf(l, "%d FETCH (MODSEQ (%d))", &seq, &dms); err != nil {
			continue // OK [HIGHESTMODSEQ n]
		}
		if lowest == 0 {
			lowest = dms
		}
		if dms == lowest {
			continue
		}
		compared++
		want := o.dovecot(fmt.Sprintf("SEARCH MODSEQ %d", dms), "")
		want = strings.TrimSuffix(want, fmt.Sprintf(" (MODSEQ %d)", dovecotHighest(want)))
		got := o.ours(fmt.Sprintf("SEARCH MODSEQ %d", ours[seq-1].ModSeq))
		if got != want {
			t.Errorf("message %d: SEARCH MODSEQ (its own)\n dovecot: %s\n ours:    %s", seq, want, got)
		}
	}
	if compared != 6 { // 22 was \Answered already
		t.Errorf("compared SEARCH MODSEQ for %d changed messages, want 6", compared)
	}
	// SEARCHRES: "$" is the saved result.
	o.res = nil
	for _, i := range []int{2, 5, 9} {
		o.res.AddNum(goimap.UID(ours[i].UID))
	}
	if _, err := dc.Run("SEARCH RETURN (SAVE) 3,6,10"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"$", "uid $", "not $", "or $ seen", "$ 1:6"} {
		o.compare("SEARCH " + c)
	}

	// THREAD and SORT on imaptest's thread sets, one folder each.
	files, _ := filepath.Glob("testdata/search/thread*.mbox")
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".mbox")
		if _, err := dc.Run("CREATE " + name); err != nil {
			t.Fatal(err)
		}
		if err := mb.CreateFolder(ctx, name); err != nil {
			t.Fatal(err)
		}
		var ms []oracleMessage
		for i, raw := range readMbox(t, file) {
			ms = append(ms, oracleMessage{raw: raw, date: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i/2) * time.Hour)})
		}
		o.appendBoth(name, ms)
		o.selectBoth(name)
		for _, alg := range []string{"ORDEREDSUBJECT", "REFERENCES"} {
			o.compare("THREAD " + alg + " US-ASCII ALL")
			o.compare("UID THREAD " + alg + " US-ASCII ALL")
		}
		o.compare("SORT (subject date) US-ASCII ALL")
	}
}

// dovecotHighest is the (MODSEQ n) Dovecot appends to a CONDSTORE
// SEARCH answer; searchFolder leaves that to the session.
func dovecotHighest(line string) uint64 {
	i := strings.LastIndex(line, "(MODSEQ ")
	if i < 0 {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSuffix(line[i+len("(MODSEQ "):], ")"), 10, 64)
	return n
}
