package sortthread

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzBaseSubject: any Subject gives valid UTF-8 without panicking, and
// the base subject of a reply to it is the same.
func FuzzBaseSubject(f *testing.F) {
	for _, s := range []string{
		"Re: Hello", "[list] Re: [list] Hello (fwd)", "[fwd: Re: x]", "Re[2]: x",
		"=?UTF-8?B?UmU6IENhZsOpIG1lZXRpbmc=?=", "=?x-unknown?Q?a?= b", "=?utf-8?q?broken",
		"  a \t b  ", "[a][b][c]", "(fwd)", "\xff\xfe", "ﬁle", "Fw:Fwd:RE :",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		base, _ := BaseSubject(s)
		if !utf8.ValidString(base) {
			t.Fatalf("BaseSubject(%q) = %q: invalid UTF-8", s, base)
		}
		if strings.ContainsAny(base, "\t\r\n") || strings.Contains(base, "  ") {
			t.Fatalf("BaseSubject(%q) = %q: white space not packed", s, base)
		}
		if base != "" && !strings.Contains(s, "=?") && !strings.HasPrefix(base, "[") {
			if again, rf := BaseSubject("Re: " + s); again != base || !rf {
				t.Fatalf("BaseSubject(Re: %q) = %q, %v; BaseSubject(%q) = %q", s, again, rf, s, base)
			}
		}
	})
}

// FuzzReferences: the References parser finds identifiers that hold an
// "@", agrees with its one-identifier form, and threading any References
// puts every message in the tree exactly once.
func FuzzReferences(f *testing.F) {
	for _, s := range []string{
		"<a@b> <c@d>", "<no-at> <a@b>", `<(c)"q l"@x>`, "<<a@b>", "<a@b", "<(", "\"<",
		"<a@b>\r\n\t<c@d>", "<a @ b>", "<a@[1.2.3.4]>", "x <y@z> w",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		all := MessageIDs(s, 0)
		for _, id := range all {
			if !strings.Contains(id, "@") {
				t.Fatalf("MessageIDs(%q) gave %q, without @", s, id)
			}
		}
		first, ok := firstMessageID(s)
		if ok != (len(all) > 0) || ok && first != all[0] {
			t.Fatalf("firstMessageID(%q) = %q, %v; MessageIDs = %q", s, first, ok, all)
		}
		msgs := []Message{
			{Seq: 1, UID: 1, MessageID: s, References: s},
			{Seq: 2, UID: 2, MessageID: "<a@b>", References: s, Subject: s},
			{Seq: 3, UID: 3, MessageID: s, InReplyTo: s, Subject: "Re: " + s},
		}
		for _, alg := range []Algorithm{References, OrderedSubject} {
			checkOnce(t, msgs, Thread(msgs, alg))
		}
	})
}

// FuzzAddressText: any address header rewrites to valid UTF-8, no longer
// than the words it fills in per address can make it, and the rewrite can
// be read again.
func FuzzAddressText(f *testing.F) {
	for _, s := range []string{
		"user-from@domain.org", "RealFrom <user-from@domain.org>", "<u (c)@ (c) d.org>", "u@d.org (Real)",
		"g: a@b, c@d;, g2: e@f;", "g:;", `"Doe, John" <j@x>`, "=?utf-8?q?=C3=89milie?= <e@x>", "a,,b", "<<>>", "(", "\"",
		"@route,@r2:u@d", "\xff\xfe <a@b>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AddressText(s)
		if !utf8.ValidString(out) {
			t.Fatalf("AddressText(%q) = %q: invalid UTF-8", s, out)
		}
		seps := strings.Count(s, ",") + strings.Count(s, ";") + strings.Count(s, ":") + 1
		if limit := 3*len(s) + 40*seps; len(out) > limit {
			t.Fatalf("AddressText(%q) = %d octets, over %d", s, len(out), limit)
		}
		AddressText(out)
	})
}
