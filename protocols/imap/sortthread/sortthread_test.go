package sortthread

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBaseSubject(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		rf   bool
	}{
		{"Hello", "HELLO", false},
		{"Re: Hello", "HELLO", true},
		{"re: RE: Fwd: fw: Hello", "HELLO", true},
		{"Re[2]: Hello", "HELLO", true},
		{"Re [x]: Hello", "HELLO", true},
		{"[list] Re: [list] Hello", "HELLO", true},
		{"[list][other] Hello", "HELLO", false},
		{"[only-a-blob]", "[ONLY-A-BLOB]", false},
		{"Re: [only-a-blob]", "[ONLY-A-BLOB]", true},
		{"Hello (fwd)", "HELLO", true},
		{"Hello (FWD)  (fwd) ", "HELLO", true},
		{"[Fwd: Hello]", "HELLO", true},
		{"[fwd: Re: Hello (fwd)]", "HELLO", true},
		{"  Hello \t  world\r\n ", "HELLO WORLD", false},
		{"Re:", "", true},
		{"", "", false},
		{"(fwd)", "", true},
		{"=?UTF-8?B?UmU6IENhZsOpIG1lZXRpbmc=?=", "CAFE\u0301 MEETING", true},
		{"=?ISO-8859-1?Q?Caf=E9?= =?ISO-8859-1?Q?_meeting?=", "CAFE\u0301 MEETING", false},
		{"=?x-unknown?Q?strange?= charset", "strange CHARSET", false},
		{"=?utf-8?q?broken", "=?UTF-8?Q?BROKEN", false},
		{"Reply all", "REPLY ALL", false},
		{"Fwd:Hello", "HELLO", true},
		{"ﬁle", "fiLE", false}, // no titlecase of its own; split, not titlecased again
		{"ǆungla", "ǅUNGLA", false},
	} {
		got, rf := BaseSubject(tc.in)
		if got != tc.want || rf != tc.rf {
			t.Errorf("BaseSubject(%q) = %q, %v; want %q, %v", tc.in, got, rf, tc.want, tc.rf)
		}
	}
}

func TestParseDate(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s int) time.Time {
		return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
	}
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"Mon, 01 Jan 2024 10:00:00 +0000", utc(2024, 1, 1, 10, 0, 0), true},
		{"Mon, 01 Jan 2024 10:00:00 +0130", utc(2024, 1, 1, 8, 30, 0), true},
		{"1 Jan 2024 10:00 -0500", utc(2024, 1, 1, 15, 0, 0), true},
		{"Sun, 07 Jan 24 10:00 GMT", utc(2024, 1, 7, 10, 0, 0), true},
		{"Sun, 07 Jan 99 10:00 GMT", utc(1999, 1, 7, 10, 0, 0), true},
		{"Sun, 07 Jan 2024 05:00:00 EST", utc(2024, 1, 7, 10, 0, 0), true},
		{"Sun, 07 Jan 2024 02:00:00 PDT", utc(2024, 1, 7, 9, 0, 0), true},
		{"Sun, 07 Jan 2024 10:00:00 Z", utc(2024, 1, 7, 10, 0, 0), true},
		{"Sun, 07 Jan 2024 (c) 10:00:00 +0000 (UTC)", utc(2024, 1, 7, 10, 0, 0), true},
		{"Sun, 07 January 2024 10.00.00", utc(2024, 1, 7, 10, 0, 0), true},
		{"Sun 07 Jan 2024 10:00:00 +0000", time.Time{}, false},
		{"yesterday at noon", time.Time{}, false},
		{"07 Jan 1899 10:00:00 +0000", time.Time{}, false},
		{"07 Jan 202 10:00:00 +0000", time.Time{}, false},
		{"", time.Time{}, false},
	} {
		got, ok := ParseDate(tc.in)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("ParseDate(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMessageIDs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"<a@b>", "a@b"},
		{"<a@b> <c@d>\r\n\t<e@f>", "a@b c@d e@f"},
		{"<no-at> <a@b>", "a@b"},
		{"garbage <a @ b> more", "a@b"},
		{`<(comment)"quoted left"@ex>`, "quoted left@ex"},
		{`<"unterminated@x> <ok@x>`, "ok@x"},
		{"<a@b", ""},
		{"a@b", ""},
		{"<<a@b>", "<a@b"},
		{"", ""},
	} {
		if got := strings.Join(MessageIDs(tc.in, 0), " "); got != tc.want {
			t.Errorf("MessageIDs(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestFirstAddress(t *testing.T) {
	for _, tc := range []struct {
		in            string
		mailbox, disp string
	}{
		{"Alice <alice@example.org>", "alice", "Alice"},
		{"alice@example.org", "alice", "alice@example.org"},
		{"frank@example.org (Frank Comment)", "frank", "Frank Comment"},
		{`"Quoted, Name" <q@example.org>, b@example.org`, "q", "Quoted, Name"},
		{"undisclosed-recipients:;", "undisclosed-recipients", "undisclosed-recipients"},
		{"justlocal", "justlocal", "justlocal@MISSING_DOMAIN"},
		{"<>", "MISSING_MAILBOX", "MISSING_MAILBOX@MISSING_DOMAIN"},
		{"=?UTF-8?B?w4FuZ2Vs?= <angel@example.es>", "angel", "Ángel"},
		{`"john doe"@example.org`, "john doe", "john doe@example.org"},
		{"Just A Name", "MISSING_MAILBOX", "Just A Name"},
		{`"Quoted Only"`, "MISSING_MAILBOX", "Quoted Only"},
		{"user (Comment)", "user", "Comment"},
		{"", "", ""},
	} {
		a := firstAddress(tc.in)
		if got := a.mailbox; a.ok && got != tc.mailbox || !a.ok && tc.mailbox != "" {
			t.Errorf("firstAddress(%q).mailbox = %q; want %q", tc.in, got, tc.mailbox)
		}
		if got := displayName(a); got != tc.disp {
			t.Errorf("displayName(%q) = %q; want %q", tc.in, got, tc.disp)
		}
	}
}

// msg makes a message for the thread tests: Seq and UID n, a Date n hours
// into 2024, the given Message-ID, References and Subject.
func msg(n int, id, refs, subject string) Message {
	return Message{
		Seq: uint32(n), UID: uint32(n) * 10,
		Date:      time.Date(2024, 1, 1, n, 0, 0, 0, time.UTC).Format(time.RFC1123Z),
		MessageID: id, References: refs, Subject: subject,
	}
}

func TestThreadReferences(t *testing.T) {
	for _, tc := range []struct {
		name string
		msgs []Message
		want string
	}{
		{"chain", []Message{msg(1, "<a@x>", "", "s"), msg(2, "<b@x>", "<a@x>", "Re: s"), msg(3, "<c@x>", "<a@x> <b@x>", "Re: s")}, "(1 2 3)"},
		{"branches", []Message{msg(1, "<a@x>", "", "s"), msg(2, "<b@x>", "<a@x>", "t"), msg(3, "<c@x>", "<a@x>", "u")}, "(1 (2)(3))"},
		{"dummy root", []Message{msg(1, "<b@x>", "<a@x>", "t"), msg(2, "<c@x>", "<a@x>", "u")}, "((1)(2))"},
		{"dummy with one child", []Message{msg(1, "<b@x>", "<a@x>", "t")}, "(1)"},
		{"loop", []Message{msg(1, "<a@x>", "<b@x>", "p"), msg(2, "<b@x>", "<a@x>", "q")}, "(2 1)"},
		{"self", []Message{msg(1, "<a@x>", "<a@x>", "p")}, "(1)"},
		{"duplicate id", []Message{msg(1, "<a@x>", "", "p"), msg(2, "<a@x>", "", "q"), msg(3, "<c@x>", "<a@x>", "r")}, "(1 3)(2)"},
		{"subject merge reply", []Message{msg(1, "<a@x>", "", "Topic"), msg(2, "<b@x>", "", "Re: Topic")}, "(1 2)"},
		{"subject merge siblings", []Message{msg(1, "<a@x>", "", "Topic"), msg(2, "<b@x>", "", "Topic")}, "((1)(2))"},
		{"empty subjects stay apart", []Message{msg(1, "<a@x>", "", ""), msg(2, "<b@x>", "", "Re:")}, "(1)(2)"},
		{"no ids", []Message{msg(2, "", "", "b"), msg(1, "", "", "a")}, "(1)(2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatThreads(Thread(tc.msgs, References), false); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestFormatThreads(t *testing.T) {
	m := func(n uint32) *Message { return &Message{Seq: n, UID: n + 100} }
	leaf := func(n uint32) *Node { return &Node{Msg: m(n)} }
	threads := []*Node{
		{Msg: m(1), Children: []*Node{leaf(2)}},
		{Msg: m(3), Children: []*Node{{Msg: m(4), Children: []*Node{leaf(5)}}, leaf(6)}},
		{Children: []*Node{leaf(7), {Msg: m(8), Children: []*Node{leaf(9), leaf(10)}}}},
		leaf(11),
	}
	if got, want := FormatThreads(threads, false), "(1 2)(3 (4 5)(6))((7)(8 (9)(10)))(11)"; got != want {
		t.Errorf("seq: got %s, want %s", got, want)
	}
	if got, want := FormatThreads(threads[:1], true), "(101 102)"; got != want {
		t.Errorf("uid: got %s, want %s", got, want)
	}
	if got := FormatThreads(nil, false); got != "" {
		t.Errorf("empty: got %q", got)
	}
}

func TestSortTies(t *testing.T) {
	msgs := []Message{
		{Seq: 1, Size: 5}, {Seq: 2, Size: 3}, {Seq: 3, Size: 5}, {Seq: 4, Size: 3},
	}
	var got []uint32
	for _, m := range Sort(msgs, []Criterion{{Key: Size, Reverse: true}}) {
		got = append(got, m.Seq)
	}
	if want := []uint32{1, 3, 2, 4}; !equal(got, want) {
		t.Errorf("REVERSE SIZE: got %v, want %v", got, want)
	}
}

func equal(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSortColumnsNum checks the radix path of one numeric column (and its
// fallback for keys beyond 32 bits) against a comparison sort: key order,
// REVERSE, ties by position.
func TestSortColumnsNum(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		n    int
		key  func() int64
	}{
		{"empty", 0, func() int64 { return 0 }},
		{"one", 1, func() int64 { return 7 }},
		{"few values", 1000, func() int64 { return rnd.Int64N(5) }},
		{"dates", 5000, func() int64 { return 1_700_000_000 + rnd.Int64N(1<<20) }},
		{"full 32 bits", 5000, func() int64 { return rnd.Int64N(1 << 32) }},
		{"beyond 32 bits", 1000, func() int64 { return rnd.Int64N(1<<40) - 1<<39 }},
	} {
		for _, rev := range []bool{false, true} {
			keys := make([]int64, tc.n)
			for i := range keys {
				keys[i] = tc.key()
			}
			got := SortColumns(tc.n, []Column{{Num: keys, Reverse: rev}})
			want := make([]int32, tc.n)
			for i := range want {
				want[i] = int32(i)
			}
			slices.SortStableFunc(want, func(a, b int32) int {
				if rev {
					return cmp.Compare(keys[b], keys[a])
				}
				return cmp.Compare(keys[a], keys[b])
			})
			if !slices.Equal(got, want) {
				t.Errorf("%s reverse=%v: order differs", tc.name, rev)
			}
		}
	}
}
