package imap

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/imap/wire"
)

func TestMatchList(t *testing.T) {
	for _, c := range []struct {
		name, ref, pattern string
		want               bool
	}{
		{"a", "", "*", true},
		{"a/b/c", "", "*", true},
		{"a/b/c", "", "%", false},
		{"a", "", "%", true},
		{"a/b", "", "%/%", true},
		{"a/b/c", "", "%/%", false},
		{"a/b/c", "", "a/*", true},
		{"a/b/c", "a/", "*", true},
		{"a/b/c", "a/", "%", false},
		{"a/b", "a/", "%", true},
		{"a", "a", "%", true}, // "a%" matches "a" itself
		{"ab", "a", "%", true},
		{"test3/test4", "", "test%3/%4", true},
		{"test3/test4", "", "tes%3/%5", false},
		{"mbox/test3/test4", "", "mbox/%3/%", true},
		{"mbox/test3/test4", "", "mbox/%t*4", true},
		{"mbox/test3/test4/test5", "", "mbox/*test4", false},
		{"a/b", "", "a/b/", false},
		{"a/b", "", "a//b", false},
		{"", "", "", true},
		{"a", "", "", false},
		// INBOX is case-insensitive, and only INBOX.
		{"INBOX", "", "inbox", true},
		{"INBOX", "", "inb%", true},
		{"INBOX", "", "i*", true},
		{"INBOX/Sub", "", "Inbox/Sub", true},
		{"INBOX/Sub", "", "Inbox/sub", false},
		{"INBOX/Sub", "inbox/", "%", true},
		{"INBOXES", "", "inboxes", false},
		{"Inbox2", "", "inbox2", false},
		// Wildcards in any number and order.
		{"abc", "", "%%%%**%%", true},
		{"a/b", "", "%%%%%%%%", false},
		{"a/b", "", "%%%*%%%%", true},
		{"aaa", "", "*a*a*a*", true},
		{"aa", "", "*a*a*a*", false},
		{"日本語/子", "", "日本語/%", true},
		{"日本語/子", "", "日%/%", true},
		{"日本語/子", "", "%本/*", false},
		// Each way a pattern is matched: one kind of wildcard, both,
		// names under INBOX.
		{"ab/bc", "", "a%/b%", true},
		{"ab/bc/d", "", "a%/b%", false},
		{"abab", "", "a%b%b", true},
		{"ab/cb", "", "a%b", false},
		{"xaxbx", "", "*a*b*", true},
		{"xbxax", "", "*a*b*", false},
		{"ab", "", "*ab*b", false},
		{"a/x/c", "", "a%/*c", true},
		{"b/x/c", "", "a%/*c", false},
		{"ab/x/c", "", "a%/*c", true},
		{"ab/x/c", "", "*%/%c", true},
		{"ab/x/c", "", "*/%/%c", true},
		{"ab/x/yc", "", "*/%/c", false},
		{"INBOX/x", "", "inb%/*", true},
		{"INBOX/x", "", "i*/%", true},
		{"INBOX/x/y", "", "I%/%", false},
	} {
		if got := matchList(c.name, c.ref, c.pattern); got != c.want {
			t.Errorf("matchList(%q, %q, %q) = %v, want %v", c.name, c.ref, c.pattern, got, c.want)
		}
		if got := refMatchList(c.name, c.ref+c.pattern); got != c.want {
			t.Errorf("reference(%q, %q) = %v, want %v", c.name, c.ref+c.pattern, got, c.want)
		}
	}
}

// TestListManyPatterns: checkList refuses a LIST with more patterns than
// maxListPatterns, and as many hostile ones as it lets through, each
// passing the cheap tests on every name, still answer.
func TestListManyPatterns(t *testing.T) {
	var pats []string
	for i := 0; i <= maxListPatterns; i++ {
		pats = append(pats, "*"+strings.Repeat("x", i+1)+"%"+fmt.Sprint(i)+"%y")
	}
	var ie *goimap.Error
	if err := checkList(&wire.List{Patterns: pats}); !errors.As(err, &ie) || ie.Code != goimap.ResponseCodeLimit {
		t.Errorf("checkList(%d patterns) = %v, want NO [LIMIT]", len(pats), err)
	}
	pats = pats[:maxListPatterns]
	if err := checkList(&wire.List{Patterns: pats}); err != nil {
		t.Errorf("checkList(%d patterns) = %v", len(pats), err)
	}
	var folders []store.FolderInfo
	for i := 0; i < 1000; i++ {
		folders = append(folders, store.FolderInfo{Name: fmt.Sprintf("%s%d/y", strings.Repeat("x", 150+i%40), i)})
	}
	if out := listMailboxes(folders, nil, &wire.List{Patterns: pats, Extended: true}, false); len(out) != 0 {
		t.Errorf("%d entries, want none (%% does not cross /)", len(out))
	}
}

// refMatchList is the plain recursive reading of RFC 3501's wildcards
// (with INBOX's first five octets case-insensitive), memoised: the
// tests' and the fuzzer's reference.
func refMatchList(name, pattern string) bool {
	fold := 0
	if name == "INBOX" || strings.HasPrefix(name, "INBOX/") {
		fold = 5
	}
	memo := make(map[[2]int]bool)
	var m func(i, j int) bool
	m = func(i, j int) bool {
		k := [2]int{i, j}
		if v, ok := memo[k]; ok {
			return v
		}
		var r bool
		switch {
		case j == len(pattern):
			r = i == len(name)
		case pattern[j] == '*':
			r = m(i, j+1) || (i < len(name) && m(i+1, j))
		case pattern[j] == '%':
			r = m(i, j+1) || (i < len(name) && name[i] != '/' && m(i+1, j))
		case i < len(name):
			a, b := name[i], pattern[j]
			if i < fold {
				a, b = lowerASCII(a), lowerASCII(b)
			}
			r = a == b && m(i+1, j+1)
		}
		memo[k] = r
		return r
	}
	return m(0, 0)
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func TestMailboxName(t *testing.T) {
	for _, c := range []struct {
		arg    string
		utf8   bool
		want   string
		status goimap.StatusResponseType // of the error, "" for none
	}{
		{"INBOX", false, "INBOX", ""},
		{"inbox", false, "INBOX", ""},
		{"iNbOx/Child", false, "INBOX/Child", ""},
		{"inboxes", false, "inboxes", ""},
		{"Entw&APw-rfe", false, "Entwürfe", ""},
		{"a&-b", false, "a&b", ""},
		{"&ZeVnLIqe-/&W1A-", false, "日本語/子", ""},
		{"&2D3eAQ-", false, "\U0001F601", ""},
		{"a&b", false, "", goimap.StatusResponseTypeNo},
		{"&AOQ", false, "", goimap.StatusResponseTypeNo},
		{"&AGE-", false, "", goimap.StatusResponseTypeNo},
		{"&2D0-", false, "", goimap.StatusResponseTypeNo},
		{"Entwürfe", false, "", goimap.StatusResponseTypeNo}, // 8-bit without UTF8=ACCEPT
		// UTF8=ACCEPT: names are UTF-8 as they are, "&" included.
		{"Entwürfe", true, "Entwürfe", ""},
		{"a&b", true, "a&b", ""},
		{"Entw&APw-rfe", true, "Entw&APw-rfe", ""},
		{"inbox/x", true, "INBOX/x", ""},
		{"\xff", true, "", goimap.StatusResponseTypeBad},
	} {
		got, err := mailboxName(c.arg, c.utf8)
		var ie *goimap.Error
		switch {
		case c.status == "" && err != nil:
			t.Errorf("mailboxName(%q, %v): %v", c.arg, c.utf8, err)
		case c.status != "" && (!errors.As(err, &ie) || ie.Type != c.status):
			t.Errorf("mailboxName(%q, %v) = %q, %v; want a %s", c.arg, c.utf8, got, err, c.status)
		case got != c.want:
			t.Errorf("mailboxName(%q, %v) = %q, want %q", c.arg, c.utf8, got, c.want)
		}
		if err == nil {
			if back := clientName(got, c.utf8); !strings.EqualFold(back, c.arg) {
				t.Errorf("clientName(%q, %v) = %q, want %q", got, c.utf8, back, c.arg)
			}
		}
	}
	if got := clientName("a\xffb", false); got != "a&,,0-b" {
		t.Errorf("clientName of invalid UTF-8 = %q", got)
	}
}

// listFixture is a small tree as store.Mailbox.ListFolders describes it.
func listFixture() ([]store.FolderInfo, []string) {
	f := func(name string, attrs ...string) store.FolderInfo {
		fi := store.FolderInfo{Name: name, Attrs: attrs}
		for _, a := range attrs {
			if a == `\Sent` {
				fi.SpecialUse = a
			}
		}
		return fi
	}
	folders := []store.FolderInfo{
		f("INBOX", `\HasChildren`),
		f("INBOX/x", `\HasNoChildren`),
		f("Sent", `\HasNoChildren`, `\Sent`),
		f("a", `\HasChildren`),
		f("a b", `\HasNoChildren`),
		f("a/b", `\HasNoChildren`),
		f("q", `\HasChildren`, `\Noselect`),
		f("q/r", `\HasNoChildren`),
		f("Entwürfe", `\HasNoChildren`),
	}
	return folders, []string{"INBOX", "Sent", "a/b", "gone", "q/r"}
}

func TestListMailboxes(t *testing.T) {
	folders, subs := listFixture()
	for _, c := range []struct {
		cmd  string
		utf8 bool
		want []string // kind name (attrs) [CHILDINFO], in order
	}{
		{`LIST "" ""`, false, []string{`LIST  (\noselect)`}},
		{`LIST "a/b/c" ""`, false, []string{`LIST a/ (\noselect)`}},
		{`LIST "" "*"`, false, []string{
			`LIST INBOX (\haschildren)`, `LIST INBOX/x (\hasnochildren)`,
			`LIST Entw&APw-rfe (\hasnochildren)`, `LIST Sent (\hasnochildren \sent)`,
			`LIST a (\haschildren)`, `LIST a/b (\hasnochildren)`, `LIST a b (\hasnochildren)`,
			`LIST q (\haschildren \noselect)`, `LIST q/r (\hasnochildren)`,
		}},
		{`LIST "" "Entw*"`, true, []string{`LIST Entwürfe (\hasnochildren)`}},
		{`LIST "" "Entw&APw-*"`, true, nil},
		{`LIST "" "Entw&APw-*"`, false, []string{`LIST Entw&APw-rfe (\hasnochildren)`}},
		{`LIST "" ("%") RETURN (SUBSCRIBED)`, false, []string{
			`LIST INBOX (\subscribed)`, `LIST Entw&APw-rfe ()`, `LIST Sent (\subscribed)`,
			`LIST a ()`, `LIST a b ()`, `LIST q (\nonexistent)`,
		}},
		{`LSUB "" "%"`, false, []string{`LSUB INBOX ()`, `LSUB Sent (\sent)`, `LSUB a (\noselect)`, `LSUB gone ()`, `LSUB q (\noselect)`}},
		{`LSUB "" "*"`, false, []string{`LSUB INBOX ()`, `LSUB Sent (\sent)`, `LSUB a/b ()`, `LSUB gone ()`, `LSUB q/r ()`}},
		{`LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)`, false, []string{
			`LIST INBOX (\haschildren \subscribed)`, `LIST Sent (\hasnochildren \subscribed)`,
			`LIST a (\haschildren) CHILDINFO`, `LIST gone (\hasnochildren \nonexistent \subscribed)`,
			`LIST q (\haschildren \nonexistent) CHILDINFO`,
		}},
		{`LIST (SPECIAL-USE) "" "*"`, false, []string{`LIST Sent (\sent)`}},
	} {
		cmd := parseListCommand(t, c.cmd)
		var got []string
		for _, d := range listMailboxes(folders, subs, cmd, c.utf8) {
			got = append(got, listLineKey(&d, cmd.LSUB))
		}
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%s (utf8 %v):\n got  %q\n want %q", c.cmd, c.utf8, got, c.want)
		}
	}
}

func TestListWantsStatus(t *testing.T) {
	folders, subs := listFixture()
	cmd := parseListCommand(t, `LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (STATUS (MESSAGES))`)
	var got []string
	for _, d := range listMailboxes(folders, subs, cmd, false) {
		if listWantsStatus(&d) {
			got = append(got, d.Mailbox)
		}
	}
	// Not a (only a subscribed child's parent), gone nor q (no mailbox).
	if want := "INBOX Sent"; strings.Join(got, " ") != want {
		t.Errorf("STATUS for %q, want %s", got, want)
	}
}

// TestListHostile feeds patterns and trees built to be slow or deep;
// each must answer (the test's own timeout is the bound) and agree with
// the reference where the reference can run.
func TestListHostile(t *testing.T) {
	deep := strings.Repeat("d/", 99) + "d"
	long := strings.Repeat("a", 190)
	for _, c := range []struct {
		what, name, pattern string
		want                bool
	}{
		{"1000 stars", "a/b/c", strings.Repeat("*", 1000), true},
		{"1000 percents", "a/b/c", strings.Repeat("%", 1000), false},
		{"1000 percents, one level", "abc", strings.Repeat("%", 1000), true},
		{"alternating wildcards", long, strings.Repeat("*%", 500) + "a", true},
		{"star-literal chain longer than the name", long, strings.Repeat("*a", 191), false},
		{"star-literal chain as long as the name", long, strings.Repeat("*a", 190), true},
		{"star-literal chain, last octet differs", long + "b", strings.Repeat("*a", 190) + "*c", false},
		{"percent chain across levels", deep, strings.Repeat("%/", 99) + "%", true},
		{"percent chain one level short", deep, strings.Repeat("%/", 98) + "%", false},
		{"deep name, star", deep, "d/*/d", true},
		{"pattern of 64 KiB", long, strings.Repeat("a", 1<<16), false},
		{"pattern of 64 KiB wildcards", long, strings.Repeat("*%", 1<<15), true},
		{"wildcards in 200 runs", long, strings.Repeat("a%*", 190), true},
	} {
		if got := matchList(c.name, "", c.pattern); got != c.want {
			t.Errorf("%s: matchList = %v, want %v", c.what, got, c.want)
		}
	}

	// A deep tree: 100 levels, 10,000 folders, listed with patterns
	// that defeat naive backtracking.
	var folders []store.FolderInfo
	for i := 1; i <= 100; i++ {
		folders = append(folders, store.FolderInfo{Name: strings.Repeat("d/", i-1) + "d", Attrs: []string{`\HasChildren`}})
	}
	for i := 0; len(folders) < 10000; i++ {
		folders = append(folders, store.FolderInfo{Name: fmt.Sprintf("f%d/%s", i%97, strings.Repeat("x", i%150)), Attrs: []string{`\HasNoChildren`}})
	}
	for _, p := range []string{strings.Repeat("*x", 150), strings.Repeat("%", 1000) + "/d", strings.Repeat("*d*/", 50)} {
		cmd := &wire.List{Patterns: []string{p}}
		out := listMailboxes(folders, nil, cmd, false)
		n := 0
		for _, fi := range folders {
			if matchList(fi.Name, "", p) {
				n++
			}
		}
		if len(out) != n {
			t.Errorf("pattern %.20q...: %d entries, want %d", p, len(out), n)
		}
		// The reference is slow on these: a sample of the names.
		for i := 0; i < len(folders); i += 97 {
			if got, want := matchList(folders[i].Name, "", p), refMatchList(folders[i].Name, p); got != want {
				t.Errorf("pattern %.20q... on %q: %v, reference %v", p, folders[i].Name, got, want)
			}
		}
		cmd = &wire.List{Patterns: []string{p}, Options: goimap.ListOptions{SelectSubscribed: true, SelectRecursiveMatch: true}, Extended: true}
		subs := make([]string, len(folders))
		for i := range folders {
			subs[i] = folders[i].Name
		}
		listMailboxes(folders, subs, cmd, false)
	}
}

func FuzzMatchList(f *testing.F) {
	for _, s := range [][3]string{
		{"a/b/c", "", "a/%/c"}, {"INBOX/x", "inbox/", "%"}, {"abc", "", "%%**"},
		{"a/b", "", "*%*"}, {"aaaa", "", "*a*a*a"}, {"日本語/子", "日", "%/*"}, {"INBOX", "", "inb%"},
		{"ab/bc", "", "a%/b%"}, {"ab/x/c", "", "a%/*c"}, {"INBOX/x/y", "", "I%/*"}, {"xaxbx", "", "*a*b*"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, name, ref, pattern string) {
		if len(name) > 40 || len(ref)+len(pattern) > 40 {
			return
		}
		got := matchList(name, ref, pattern)
		if want := refMatchList(name, ref+pattern); got != want {
			t.Errorf("matchList(%q, %q, %q) = %v, reference %v", name, ref, pattern, got, want)
		}
	})
}

func FuzzMailboxName(f *testing.F) {
	for _, s := range mailboxNameSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, arg string, utf8 bool) {
		name, err := mailboxName(arg, utf8)
		if err != nil {
			var ie *goimap.Error
			if !errors.As(err, &ie) || (ie.Type != goimap.StatusResponseTypeNo && ie.Type != goimap.StatusResponseTypeBad) {
				t.Fatalf("mailboxName(%q, %v): error %v is no NO or BAD", arg, utf8, err)
			}
			return
		}
		if !validUTF8(name) {
			t.Fatalf("mailboxName(%q, %v) = %q, not UTF-8", arg, utf8, name)
		}
		// One spelling per name: the client's name comes back as it
		// was sent, but for INBOX's case.
		back := clientName(name, utf8)
		if back != arg && !(inboxPrefixFold(arg) && strings.EqualFold(back[:5], arg[:5]) && back[5:] == arg[5:]) {
			t.Fatalf("mailboxName(%q, %v) = %q, clientName gives %q", arg, utf8, name, back)
		}
		if again, err := mailboxName(back, utf8); err != nil || again != name {
			t.Fatalf("round trip of %q: %q, %v", arg, again, err)
		}
	})
}

func BenchmarkList(b *testing.B) {
	folders := make([]store.FolderInfo, 0, 10000)
	subs := make([]string, 0, 5000)
	for i := 0; len(folders) < 10000; i++ {
		name := fmt.Sprintf("Projects/p%03d/Ordner %d ä", i/100, i)
		folders = append(folders, store.FolderInfo{Name: name, Attrs: []string{`\HasNoChildren`}})
		if i%2 == 0 {
			subs = append(subs, name)
		}
	}
	for _, c := range []string{
		`LIST "" "*"`,
		`LIST "" "%"`,
		`LIST "" "Projects/p05%/*"`,
		`LSUB "" "*"`,
		`LIST (SUBSCRIBED RECURSIVEMATCH) "" "Projects/%" RETURN (CHILDREN)`,
	} {
		cmd := parseListCommand(b, c)
		b.Run(c, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				listMailboxes(folders, subs, cmd, false)
			}
		})
	}
}
