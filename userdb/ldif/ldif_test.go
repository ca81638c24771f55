package ldif

import (
	"encoding/base64"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Entry
	}{
		{
			name: "plain entries, comments, version, multiple values",
			in: `# leading comment
version: 1

# a comment before the entry
dn: uid=alice@example.com,ou=people,dc=example,dc=com
objectClass: top
objectClass: inetOrgPerson
# a comment inside the entry
cn: Alice Liddell
mail: alice@example.com
OBJECTCLASS: person

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people
`,
			want: []Entry{
				{DN: "uid=alice@example.com,ou=people,dc=example,dc=com", Line: 5, Attrs: []Attr{
					{"objectClass", []string{"top", "inetOrgPerson", "person"}},
					{"cn", []string{"Alice Liddell"}},
					{"mail", []string{"alice@example.com"}},
				}},
				{DN: "ou=people,dc=example,dc=com", Line: 13, Attrs: []Attr{
					{"objectClass", []string{"organizationalUnit"}},
					{"ou", []string{"people"}},
				}},
			},
		},
		{
			name: "version line directly followed by the first record",
			in:   "version: 1\ndn: dc=example,dc=com\ndc: example\n",
			want: []Entry{{DN: "dc=example,dc=com", Line: 2, Attrs: []Attr{{"dc", []string{"example"}}}}},
		},
		{
			name: "folding (the one leading space goes), folded comment, CRLF, no final newline",
			in:   "# a long\r\n  folded comment\r\ndn: cn=Bar\r\n baz,dc=example,dc=com\r\ndescription: one\r\n  two\r\n three",
			want: []Entry{{DN: "cn=Barbaz,dc=example,dc=com", Line: 3, Attrs: []Attr{{"description", []string{"one twothree"}}}}},
		},
		{
			name: "base64 dn and values, binary and UTF-8",
			// "cn=Müller,dc=example,dc=com", " leading space", "\x00\x01\xff"
			in: "dn:: Y249TcO8bGxlcixkYz1leGFtcGxlLGRjPWNvbQ==\ncn:: IGxlYWRpbmcgc3BhY2U=\njpegPhoto:: AAH/\nsn: Müller\n",
			want: []Entry{{DN: "cn=Müller,dc=example,dc=com", Line: 1, Attrs: []Attr{
				{"cn", []string{" leading space"}},
				{"jpegPhoto", []string{"\x00\x01\xff"}},
				{"sn", []string{"Müller"}},
			}}},
		},
		{
			name: "changetype add, options, numeric OID, empty value",
			in:   "dn: dc=example,dc=com\nchangetype: add\ncn;lang-de: Beispiel\n2.5.4.3: x\ndescription:\n",
			want: []Entry{{DN: "dc=example,dc=com", Line: 1, Attrs: []Attr{
				{"cn;lang-de", []string{"Beispiel"}},
				{"2.5.4.3", []string{"x"}},
				{"description", []string{""}},
			}}},
		},
		{
			name: "many blank lines, BOM, only comments at the end",
			in:   "\xef\xbb\xbf\n\n\ndn: dc=a\ndc: a\n\n\n\n# end\n",
			want: []Entry{{DN: "dc=a", Line: 4, Attrs: []Attr{{"dc", []string{"a"}}}}},
		},
		{name: "empty input", in: "", want: nil},
		{name: "only a version", in: "version: 1\n", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	long := strings.Repeat("x", 10<<10)
	tests := []struct {
		name  string
		in    string
		lim   Limits
		class error
		line  int
		msg   string // substring of the error text
	}{
		{"changetype modify", "dn: dc=a\nchangetype: modify\nreplace: dc\ndc: b\n", Limits{}, ErrUnsupported, 2, `"modify"`},
		{"changetype delete", "dn: dc=a\ndc: a\n\ndn: dc=b\nchangetype: delete\n", Limits{}, ErrUnsupported, 5, `"delete"`},
		{"changetype modrdn", "dn: dc=a\nchangetype: modrdn\nnewrdn: dc=b\n", Limits{}, ErrUnsupported, 2, "modrdn"},
		{"changetype not first", "dn: dc=a\ndc: a\nchangetype: add\n", Limits{}, ErrSyntax, 3, "follow dn"},
		{"URL value", "dn: dc=a\ndc: a\njpegPhoto:< file:///etc/shadow\n", Limits{}, ErrUnsupported, 3, "URL"},
		{"control", "dn: dc=a\ncontrol: 1.2.3 true\nchangetype: add\ndc: a\n", Limits{}, ErrUnsupported, 2, "control"},
		{"modify separator", "dn: dc=a\ndc: a\n-\n", Limits{}, ErrSyntax, 3, "separator"},
		{"no dn", "cn: x\nsn: y\n", Limits{}, ErrSyntax, 1, "want dn"},
		{"no colon", "dn: dc=a\njust text\n", Limits{}, ErrSyntax, 2, "no colon"},
		{"bad base64", "dn: dc=a\ncn:: !!!notbase64\n", Limits{}, ErrSyntax, 2, "base64"},
		{"NUL in value", "dn: dc=a\ncn: a\x00b\n", Limits{}, ErrSyntax, 2, "control character"},
		{"NUL in dn", "dn:: ZGM9YQBi\ndc: a\n", Limits{}, ErrSyntax, 1, "NUL"},
		{"CR in value", "dn: dc=a\ncn: a\rb\n", Limits{}, ErrSyntax, 2, "control character"},
		{"invalid UTF-8", "dn: dc=a\ncn: \xff\xfe\n", Limits{}, ErrSyntax, 2, "UTF-8"},
		{"malformed dn", "dn: this is no dn\ncn: x\n", Limits{}, ErrSyntax, 1, "malformed dn"},
		{"empty dn", "dn:\ncn: x\n", Limits{}, ErrSyntax, 1, "empty dn"},
		{"no attributes", "dn: dc=a\n\ndn: dc=b\ndc: b\n", Limits{}, ErrSyntax, 1, "no attributes"},
		{"two dns in a record", "dn: dc=a\ndc: a\ndn: dc=b\ndc: b\n", Limits{}, ErrSyntax, 3, "second dn"},
		{"continuation first", " folded\ndn: dc=a\n", Limits{}, ErrSyntax, 1, "continuation"},
		{"continuation after blank", "dn: dc=a\ndc: a\n\n more\n", Limits{}, ErrSyntax, 4, "continuation"},
		{"version 2", "version: 2\ndn: dc=a\ndc: a\n", Limits{}, ErrUnsupported, 1, "version"},
		{"version later", "dn: dc=a\ndc: a\n\nversion: 1\n", Limits{}, ErrSyntax, 4, "want dn"},
		{"bad attribute name", "dn: dc=a\nc n: x\n", Limits{}, ErrSyntax, 2, "attribute description"},
		{"bad option", "dn: dc=a\ncn;: x\n", Limits{}, ErrSyntax, 2, "attribute description"},
		{"bad OID", "dn: dc=a\n1..2: x\n", Limits{}, ErrSyntax, 2, "attribute description"},
		{"filter injection as name", "dn: dc=a\n*)(uid=*: x\n", Limits{}, ErrSyntax, 2, "attribute description"},
		{"10 KB garbage line", long + "\n", Limits{}, ErrSyntax, 1, "no colon"},
		{"10 KB name", "dn: dc=a\n" + long + ": v\n", Limits{}, ErrSyntax, 2, "…"},
		{"line over limit", "dn: dc=a\ncn: " + long + "\n", Limits{MaxLine: 4096}, ErrTooLarge, 2, "line longer"},
		{"entry over limit", "dn: dc=a\n" + strings.Repeat("cn: "+strings.Repeat("y", 1000)+"\n", 20), Limits{MaxEntry: 8192}, ErrTooLarge, 0, "record longer"},
		{"folded line over entry limit", "dn: dc=a\ncn: x\n" + strings.Repeat(" "+strings.Repeat("z", 500)+"\n", 50), Limits{MaxEntry: 8192}, ErrTooLarge, 0, "record longer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReaderLimits(strings.NewReader(tt.in), tt.lim)
			var err error
			for err == nil {
				_, err = r.Next()
			}
			if err == io.EOF {
				t.Fatalf("no error, want %v", tt.class)
			}
			if !errors.Is(err, tt.class) {
				t.Errorf("error %v, want class %v", err, tt.class)
			}
			var le *Error
			if !errors.As(err, &le) {
				t.Fatalf("error %T is not *ldif.Error", err)
			}
			if tt.line != 0 && le.Line != tt.line {
				t.Errorf("error at line %d, want %d: %v", le.Line, tt.line, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
			if len(err.Error()) > 400 {
				t.Errorf("error text is %d bytes long; hostile input must be clipped", len(err.Error()))
			}
			// Errors are sticky: a caller that loops on Next stops.
			if _, again := r.Next(); again != err {
				t.Errorf("second Next = %v, want the same error", again)
			}
		})
	}
}

func TestEntryValues(t *testing.T) {
	e := Entry{Attrs: []Attr{{"Mail", []string{"a@b"}}}}
	if got := e.Values("mail"); !reflect.DeepEqual(got, []string{"a@b"}) {
		t.Errorf("Values(mail) = %v", got)
	}
	if got := e.Values("cn"); got != nil {
		t.Errorf("Values(cn) = %v, want nil", got)
	}
}

// TestStreaming checks that Next hands out entries one at a time and that a
// huge file of many entries is not a problem for the per-entry limit.
func TestStreaming(t *testing.T) {
	const n = 5000
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString("dn: cn=u,dc=example,dc=com\ncn: u\nsn: " + strings.Repeat("s", 100) + "\n\n")
	}
	r := NewReaderLimits(strings.NewReader(b.String()), Limits{MaxEntry: 1024})
	count := 0
	for {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		count++
	}
	if count != n {
		t.Errorf("read %d entries, want %d", count, n)
	}
}

// FuzzParse: every error is an *Error with a line number, one of the
// error classes and a bounded message; read one octet at a time the input
// gives the same result; every entry has a valid dn and attribute
// descriptions; and the entries, written back as LDIF (base64 values,
// folded), parse to the same entries.
func FuzzParse(f *testing.F) {
	f.Add("version: 1\ndn: dc=a\ndc: a\n")
	f.Add("dn:: ZGM9YQ==\ncn:: AAH/\n \n")
	f.Add("dn: dc=a\nchangetype: modify\n-\n")
	f.Add("\xef\xbb\xbfdn: uid=a,dc=b\r\nobjectClass: top\r\n# comment\r\n  folded\r\ncn;lang-de: x\r\nCN: y\r\n\r\n\r\ndn: dc=c\nchangetype: add\ndc: c")
	f.Add("dn: dc=a\n 2\nmail: a@b\n\ndn: dc=a\ncontrol: 1.2.3\n")
	f.Add("dn: cn=x\\,y,dc=a\n1.2.840: v\nx-y;binary:: \n")
	f.Fuzz(func(t *testing.T, in string) {
		entries, err := Parse(strings.NewReader(in))
		again, err2 := Parse(iotest.OneByteReader(strings.NewReader(in)))
		if (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() || !reflect.DeepEqual(entries, again) {
			t.Fatalf("read whole: %v, %v; read by the octet: %v, %v", entries, err, again, err2)
		}
		if err != nil {
			var le *Error
			switch {
			case !errors.As(err, &le):
				t.Fatalf("error %T is not *ldif.Error", err)
			case le.Line < 1 || le.Line > strings.Count(in, "\n")+1:
				t.Fatalf("error at line %d of %d: %v", le.Line, strings.Count(in, "\n")+1, err)
			case !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrTooLarge):
				t.Fatalf("error of no class: %v", err)
			case len(err.Error()) > 400:
				t.Fatalf("error message of %d octets", len(err.Error()))
			}
			return
		}
		var b strings.Builder
		for i, e := range entries {
			if e.DN == "" || len(e.Attrs) == 0 || checkDN(e.DN) != nil || i > 0 && e.Line <= entries[i-1].Line {
				t.Fatalf("entry %d: %#v", i, e)
			}
			writeEntry(&b, e)
		}
		back, err := Parse(strings.NewReader(b.String()))
		if err != nil || !sameEntries(entries, back) {
			t.Fatalf("entries %#v\nwritten as %q\nparse to %#v, %v", entries, b.String(), back, err)
		}
	})
}

// writeEntry writes an entry as LDIF with every value in base64, folded at
// 76 columns.
func writeEntry(b *strings.Builder, e Entry) {
	fold := func(line string) {
		for len(line) > 76 {
			b.WriteString(line[:76] + "\n ")
			line = line[76:]
		}
		b.WriteString(line + "\n")
	}
	fold("dn:: " + base64.StdEncoding.EncodeToString([]byte(e.DN)))
	for _, a := range e.Attrs {
		for _, v := range a.Values {
			fold(a.Name + ":: " + base64.StdEncoding.EncodeToString([]byte(v)))
		}
	}
	b.WriteString("\n")
}

// sameEntries compares entries but for their line numbers.
func sameEntries(a, b []Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].DN != b[i].DN || !reflect.DeepEqual(a[i].Attrs, b[i].Attrs) {
			return false
		}
	}
	return true
}

func BenchmarkParse(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 1000; i++ {
		sb.WriteString("dn: uid=user@example.com,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\ncn: User\nsn: User\nmail: user@example.com\nuserPassword:: e1NTSEF9WEdKb2NVbFVBR1R2Ym8wM1dLSnQzY0g2ckkwWUM0T0c=\n\n")
	}
	in := sb.String()
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(strings.NewReader(in)); err != nil {
			b.Fatal(err)
		}
	}
}
