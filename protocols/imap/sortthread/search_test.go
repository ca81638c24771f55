package sortthread

import (
	"strings"
	"testing"
	"time"
)

func TestAddressText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"user-from@domain.org", "<user-from@domain.org>"},
		{"RealFrom <user-from@domain.org>", "RealFrom <user-from@domain.org>"},
		{"<user-from (comment)@ (comment) domain.org>", "<user-from@domain.org>"},
		{"user-from@domain.org (RealFrom)", "RealFrom <user-from@domain.org>"},
		{"a@x.org, b@y.org", "<a@x.org>, <b@y.org>"},
		{"groupname: u1@d.org, u2@d.org;,\r\n  groupname2: u3@d.org;", "groupname: <u1@d.org>, <u2@d.org>;, groupname2: <u3@d.org>;"},
		{"groupname:;", "groupname: ;"},
		{`"Doe, John" <john@example.com>, jane@example.com (Jane Roe)`, `"Doe, John" <john@example.com>, Jane Roe <jane@example.com>`},
		{"=?ISO-8859-1?Q?J=F6rg?= <j@example.de>", "Jörg <j@example.de>"},
		{"first@example.com,, second@example.com", "<first@example.com>, <second@example.com>"},
		{"nobody", "<nobody@MISSING_DOMAIN>"},
		{"", ""},
		{"<<<>>>@@@,,,;;;\"", "*"}, // junk: whatever it yields, it ends
	} {
		if got := AddressText(tc.in); got != tc.want && tc.want != "*" {
			t.Errorf("AddressText(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
	// Linear in its input, however hostile.
	long := strings.Repeat("a@b, (c) <d@e>; g: ", 20000)
	if got := AddressText(long); len(got) == 0 {
		t.Error("AddressText of a long list is empty")
	}
}

func TestSentDay(t *testing.T) {
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"Mon, 04 Mar 2024 23:30:00 -0800", day(2024, 3, 4)},
		{"5 Mar 2024 00:15 +0100", day(2024, 3, 5)},
		{"", day(1970, 1, 1)},
		{"yesterday at noon", day(1970, 1, 1)},
		{"Wed, 31 Dec 1969 23:00:00 +0000", day(2106, 2, 7)},
	} {
		if got := SentDay(tc.in); !got.Equal(tc.want) {
			t.Errorf("SentDay(%q) = %v; want %v", tc.in, got, tc.want)
		}
	}
}
