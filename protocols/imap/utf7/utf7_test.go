package utf7

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2/imapclient"
)

// valid holds UTF-8 names and their one modified UTF-7 spelling; the
// first ones are RFC 3501's and RFC 2152's examples.
var valid = []struct{ utf8, utf7 string }{
	{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
	{"Hi Mom -☺-!", "Hi Mom -&Jjo--!"},
	{"日本語", "&ZeVnLIqe-"},
	{"", ""},
	{"INBOX", "INBOX"},
	{"&", "&-"},
	{"&&", "&-&-"},
	{"A&B", "A&-B"},
	{"-&-", "-&--"},
	{"Entwürfe", "Entw&APw-rfe"},
	{"Gelöschte Elemente", "Gel&APY-schte Elemente"},
	{"é&ü", "&AOk-&-&APw-"},
	{"é ü", "&AOk- &APw-"},
	{"£", "&AKM-"},
	{"££", "&AKMAow-"},
	{"£££", "&AKMAowCj-"},
	{"€", "&IKw-"},
	{"😀", "&2D3eAA-"},
	{"a😀b", "a&2D3eAA-b"},
	{"\x00", "&AAA-"},
	{"tab\there", "tab&AAk-here"},
	{"\x7f", "&AH8-"},
	{"\ufffd", "&,,0-"},
	{"Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"},
}

// invalid holds wire names Decode refuses, with the reason.
var invalid = []struct{ utf7, why string }{
	{"&", "unterminated shift"},
	{"a&", "unterminated shift at the end"},
	{"&AKM", "unterminated shift"},
	{"&U,BTFw", "unterminated shift"},
	{"&AGE-", "printable ASCII (a) encoded"},
	{"&ACY-", "& encoded instead of &-"},
	{"&AKMAYQ-", "printable ASCII inside a run"},
	{"&AKM-&AKM-", "two shifts back to back (canonical: one)"},
	{"&A-", "one base64 char: no code unit"},
	{"&AK-", "12 bits: partial code unit"},
	{"&AKMA-", "partial code unit after a whole one"},
	{"&AKN-", "non-zero bits after the last unit"},
	{"&AKM=-", "padding"},
	{"&AK/-", "standard base64 '/' instead of ','"},
	{"&AK!-", "not base64"},
	{"&2D0-", "lone high surrogate"},
	{"&3gA-", "lone low surrogate"},
	{"&2D3YPQ-", "high surrogate followed by a high one"},
	{"&3gDYPQ-", "low surrogate before high"},
	{"&2D0AYQ-", "high surrogate followed by a BMP character"},
	{"caf\xc3\xa9", "raw 8-bit (UTF-8) octets"},
	{"a\tb", "control character"},
	{"a\x7fb", "DEL"},
	{"&AKM\r\n-", "CR LF inside base64"},
}

func TestValid(t *testing.T) {
	for _, tc := range valid {
		got, err := Encode(tc.utf8)
		if err != nil || got != tc.utf7 {
			t.Errorf("Encode(%q) = %q, %v; want %q", tc.utf8, got, err, tc.utf7)
		}
		back, err := Decode(tc.utf7)
		if err != nil || back != tc.utf8 {
			t.Errorf("Decode(%q) = %q, %v; want %q", tc.utf7, back, err, tc.utf8)
		}
	}
}

func TestInvalid(t *testing.T) {
	for _, tc := range invalid {
		got, err := Decode(tc.utf7)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Decode(%q) = %q, %v; want an error (%s)", tc.utf7, got, err, tc.why)
		}
	}
	if _, err := Encode("caf\xe9"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Encode of Latin-1 octets: %v, want an error", err)
	}
}

// goimap answers LIST with name through go-imap's client, which decodes
// mailbox names as modified UTF-7, and returns what the client made of
// it; or sends CREATE for name and returns the octets the client wrote.
func goimap(t *testing.T, listName, createName string) (decoded string, listErr error, encoded string) {
	t.Helper()
	cconn, sconn := net.Pipe()
	created := make(chan string, 1)
	go func() {
		defer sconn.Close()
		br := bufio.NewReader(sconn)
		fmt.Fprint(sconn, "* OK [CAPABILITY IMAP4rev1] ready\r\n")
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			tag, rest, _ := strings.Cut(strings.TrimSuffix(line, "\r\n"), " ")
			verb, arg, _ := strings.Cut(rest, " ")
			switch verb {
			case "LIST":
				fmt.Fprintf(sconn, "* LIST () \"/\" \"%s\"\r\n", listName)
			case "CREATE":
				if strings.HasPrefix(arg, "\"") {
					arg = strings.NewReplacer(`\\`, `\`, `\"`, `"`).Replace(arg[1 : len(arg)-1])
				}
				created <- arg
			}
			fmt.Fprintf(sconn, "%s OK done\r\n", tag)
		}
	}()
	c := imapclient.New(cconn, nil)
	defer c.Close()
	if createName != "" {
		if err := c.Create(createName, nil).Wait(); err != nil {
			t.Fatalf("go-imap CREATE %q: %v", createName, err)
		}
		return "", nil, <-created
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return "", err, ""
	}
	if len(list) != 1 {
		return "", fmt.Errorf("%d LIST answers", len(list)), ""
	}
	return list[0].Mailbox, nil, ""
}

// TestGoIMAPClient compares with go-imap v2's client: it decodes every
// valid name as Decode does, encodes every name as Encode does, and
// refuses the invalid names too, except those it is lenient about.
func TestGoIMAPClient(t *testing.T) {
	lenient := map[string]bool{
		"&AKN-": true, // go-imap's base64 ignores non-zero trailing bits
	}
	for _, tc := range valid {
		if strings.ContainsAny(tc.utf7, `"\`) || strings.EqualFold(tc.utf8, "INBOX") {
			continue
		}
		if got, err, _ := goimap(t, tc.utf7, ""); err != nil || got != tc.utf8 {
			t.Errorf("go-imap decodes %q as %q, %v; Decode: %q", tc.utf7, got, err, tc.utf8)
		}
		if tc.utf8 == "" {
			continue
		}
		if _, _, enc := goimap(t, "", tc.utf8); enc != tc.utf7 {
			t.Errorf("go-imap encodes %q as %q; Encode: %q", tc.utf8, enc, tc.utf7)
		}
	}
	for _, tc := range invalid {
		if strings.ContainsAny(tc.utf7, "\"\\\r\n") || strings.IndexFunc(tc.utf7, func(r rune) bool { return r >= utf8.RuneSelf }) >= 0 {
			continue // not a quoted string on the wire, or raw UTF-8 (which go-imap takes)
		}
		got, err, _ := goimap(t, tc.utf7, "")
		if err == nil && !lenient[tc.utf7] {
			t.Errorf("go-imap accepts %q (%s) as %q; Decode refuses it", tc.utf7, tc.why, got)
		}
		if err != nil && lenient[tc.utf7] {
			t.Errorf("go-imap now refuses %q (%v): drop it from lenient", tc.utf7, err)
		}
	}
}
