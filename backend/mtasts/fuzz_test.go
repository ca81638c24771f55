package mtasts

import (
	"slices"
	"strings"
	"testing"
)

// FuzzParsePolicy: any bytes either fail or give a policy that obeys the
// RFC's rules and survives Format and ParsePolicy unchanged.
//
//	go test -run '^$' -fuzz '^FuzzParsePolicy$' ./backend/mtasts/
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n"))
	f.Add([]byte("version: STSv1\nmode: none\nmax_age: 0\n"))
	f.Add([]byte("version: STSv1\nmode: testing\nmx: A.B.\nmax_age: 99999999999\nx-ext: y\n"))
	f.Add([]byte("version:STSv1\n\n\nmode:enforce\nmx:*.*.a\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			return
		}
		if p.Mode != Enforce && p.Mode != Testing && p.Mode != None {
			t.Fatalf("mode %q", p.Mode)
		}
		if p.MaxAge < 0 || p.MaxAge > MaxAge {
			t.Fatalf("max_age %v", p.MaxAge)
		}
		if p.Mode != None && len(p.MX) == 0 {
			t.Fatal("no mx")
		}
		for _, mx := range p.MX {
			if strings.ContainsAny(mx, "\r\n :") || strings.ToLower(mx) != mx {
				t.Fatalf("mx %q", mx)
			}
			if !strings.HasPrefix(mx, "*.") && !p.Match(mx) {
				t.Fatalf("mx %q does not match itself", mx)
			}
		}
		again, err := ParsePolicy(p.Format())
		if err != nil || again.Mode != p.Mode || again.MaxAge != p.MaxAge || !slices.Equal(again.MX, p.MX) {
			t.Fatalf("round trip of %q: %+v, %v", p.Format(), again, err)
		}
	})
}

// FuzzParseRecord: any TXT text either fails or gives an id of 1 to 32
// letters and digits, and a record that is not STSv1 is never an error
// other than ErrNoRecord.
//
//	go test -run '^$' -fuzz '^FuzzParseRecord$' ./backend/mtasts/
func FuzzParseRecord(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Add("v=STSv1;id=a;ext=b;")
	f.Add("v=spf1 -all")
	f.Add("v=STSv1 ;; id = x")
	f.Fuzz(func(t *testing.T, txt string) {
		r, err := ParseRecord(txt)
		if err != nil {
			return
		}
		if r.ID == "" || len(r.ID) > 32 || !isAlnum(r.ID) {
			t.Fatalf("id %q from %q", r.ID, txt)
		}
		if !strings.HasPrefix(strings.TrimSpace(txt), "v=STSv1") {
			t.Fatalf("record %q accepted without v=STSv1", txt)
		}
	})
}
