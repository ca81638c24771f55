package utf7

import (
	"testing"
	"unicode/utf8"
)

// FuzzRoundTrip checks both directions on one input: as UTF-8,
// Decode(Encode(s)) == s; as wire text, Encode(Decode(x)) == x whenever
// Decode accepts x, which holds only because Decode accepts the
// canonical spelling alone.
func FuzzRoundTrip(f *testing.F) {
	for _, tc := range valid {
		f.Add(tc.utf8)
		f.Add(tc.utf7)
	}
	for _, tc := range invalid {
		f.Add(tc.utf7)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if utf8.ValidString(s) {
			enc, err := Encode(s)
			if err != nil {
				t.Fatalf("Encode(%q): %v", s, err)
			}
			if dec, err := Decode(enc); err != nil || dec != s {
				t.Fatalf("Decode(Encode(%q)) = Decode(%q) = %q, %v", s, enc, dec, err)
			}
		} else if _, err := Encode(s); err == nil {
			t.Fatalf("Encode accepts invalid UTF-8 %q", s)
		}
		dec, err := Decode(s)
		if err != nil {
			return
		}
		if !utf8.ValidString(dec) {
			t.Fatalf("Decode(%q) = %q, not UTF-8", s, dec)
		}
		if enc, err := Encode(dec); err != nil || enc != s {
			t.Fatalf("Encode(Decode(%q)) = Encode(%q) = %q, %v", s, dec, enc, err)
		}
	})
}
