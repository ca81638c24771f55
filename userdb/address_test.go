package userdb

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCanonical(t *testing.T) {
	tests := []struct {
		in, want string // want "" for a refusal
	}{
		{"Alice@Example.ORG", "alice@example.org"},
		{"jörg@MÜNCHEN.de", "jörg@münchen.de"},
		{"a.b+c@x.y", "a.b+c@x.y"},
		{"user@other@example.org", ""},
		{"\"q\"@example.org", ""},
		{"a@b..c", ""},
		{"a@-b.c", ""},
		{"a%b@c.d", ""},
		{".a@b.c", ""},
		{"a@b.c.", ""},
		{"a\xff@b.c", ""},                                // not UTF-8: lower-casing would change it
		{"a@b\xc2.c", ""},                                // the same in the domain
		{"a@" + strings.Repeat("\u023a", 31) + ".c", ""}, // Ⱥ (2 octets) lower-cases to ⱥ (3): a label of 93 > 63
		{strings.Repeat("\u023a", 32) + "@b.c", ""},      // a 64-octet local part of 96 once lower-cased
		{strings.Repeat("\u212a", 21) + "@b.c", strings.Repeat("k", 21) + "@b.c"}, // the Kelvin sign lower-cases to k
	}
	for _, tc := range tests {
		got, err := Canonical(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("Canonical(%q) = %q, want a refusal", tc.in, got)
		case tc.want == "" && !errors.Is(err, ErrInvalid):
			t.Errorf("Canonical(%q): %v, want ErrInvalid", tc.in, err)
		case tc.want != "" && (err != nil || got != tc.want):
			t.Errorf("Canonical(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// FuzzCanonical: a canonical address is its own canonical form, is valid
// UTF-8 in lower case within the RFC 5321 limits, and Split agrees with
// Canonical and CanonicalDomain; every refusal wraps ErrInvalid.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{
		"alice@example.org", "Alice@Example.ORG", "jörg@münchen.de", "a@b@c", "\"a b\"@c.d",
		"a..b@c.d", "a@b.c.", "a@[1.2.3.4]", "a\x00@b.c", "a\xff@b.c", "\u023a@\u023a.de", "\u212a@b.c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Canonical(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Canonical(%q): %v does not wrap ErrInvalid", in, err)
			}
			return
		}
		if again, err := Canonical(c); err != nil || again != c {
			t.Fatalf("Canonical(%q) = %q, but that canonicalises to %q, %v", in, c, again, err)
		}
		if !utf8.ValidString(c) || c != strings.ToLower(c) || len(c) > maxAddress {
			t.Fatalf("Canonical(%q) = %q: not lower-case UTF-8 within %d octets", in, c, maxAddress)
		}
		local, domain, err := Split(in)
		if err != nil || local+"@"+domain != c || len(local) > maxLocalPart {
			t.Fatalf("Split(%q) = %q, %q, %v; Canonical says %q", in, local, domain, err, c)
		}
		if d, err := CanonicalDomain(domain); err != nil || d != domain {
			t.Fatalf("CanonicalDomain(%q) = %q, %v", domain, d, err)
		}
	})
}
