package senderauth

import (
	"strings"
	"testing"
)

func TestAuthServID(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"mx.example.net; spf=pass", "mx.example.net"},
		{"  MX.Example.NET 1; none", "MX.Example.NET"},
		{"(comment) mx.example.net;", "mx.example.net"},
		{"(nested (comment) here)\r\n\tmx.example.net; dkim=pass", "mx.example.net"},
		{`"mx.example.net"; none`, "mx.example.net"},
		{`"mx.ex\"ample"; none`, `mx.ex"ample`},
		{"mx.example.net", "mx.example.net"},
		{"", ""},
		{";", ""},
		{"(unterminated mx.example.net", ""},
		{`"unterminated`, ""},
		{`(\) still comment) mx.example.net;`, "mx.example.net"},
		{`()" "`, " "},
	} {
		if got := AuthServID(tc.value); got != tc.want {
			t.Errorf("AuthServID(%q) = %q, want %q", tc.value, got, tc.want)
		}
	}
	if !ClaimsUs(" mx.EXAMPLE.net; spf=pass", "mx.example.net") || ClaimsUs("other.net; spf=pass", "mx.example.net") || ClaimsUs("", "") {
		t.Error("ClaimsUs")
	}
}

// FuzzAuthServID: any field value gives an id without separators unless
// it is a quoted string (after comments and white space: RFC 8601's value
// may be one, spaces and all), and never panics.
func FuzzAuthServID(f *testing.F) {
	for _, s := range []string{"mx.example.net; spf=pass", `"q\"x"; none`, "(a (b) c) id;", "((((", `"\`, "(\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		id := AuthServID(value)
		if !strings.HasPrefix(skipCFWS(value), `"`) && strings.ContainsAny(id, " \t\r\n;()") {
			t.Errorf("AuthServID(%q) = %q", value, id)
		}
		// Case differences in ASCII do not matter.
		upper := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' {
				return r - 'a' + 'A'
			}
			return r
		}, id)
		if id != "" && !ClaimsUs(value, upper) {
			t.Errorf("ClaimsUs(%q, %q) false", value, id)
		}
	})
}
