package wire

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// utf8Message has a UTF-8 header field (message/global, RFC 6532).
const utf8Message = "Subject: Grüße\r\n\r\nhé\r\n"

// TestAppendUTF8 reads RFC 6855's UTF8 data item, alone, among classic
// messages (MULTIAPPEND) and with flags and a date; the reader only
// parses it, whether the session allows it is not its business.
func TestAppendUTF8(t *testing.T) {
	type msg struct {
		body         string
		utf8, binary bool
		flags        []imap.Flag
	}
	n := strconv.Itoa(len(utf8Message))
	for _, tc := range []struct {
		name  string
		in    string
		want  []msg
		conts int
	}{
		{"sync", "a APPEND INBOX UTF8 (~{" + n + "}\r\n" + utf8Message + ")\r\nb NOOP\r\n",
			[]msg{{body: utf8Message, utf8: true}}, 1},
		{"non-sync, lower case", "a APPEND INBOX utf8 (~{" + n + "+}\r\n" + utf8Message + ")\r\nb NOOP\r\n",
			[]msg{{body: utf8Message, utf8: true}}, 0},
		{"flags and date", "a APPEND INBOX (\\Seen) \"07-Feb-1994 21:52:25 -0800\" UTF8 (~{" + n + "+}\r\n" + utf8Message + ")\r\nb NOOP\r\n",
			[]msg{{body: utf8Message, utf8: true, flags: []imap.Flag{imap.FlagSeen}}}, 0},
		{"multiappend", "a APPEND INBOX {3+}\r\nabc UTF8 (~{" + n + "+}\r\n" + utf8Message + ") ~{2+}\r\nx\x00 (\\Draft) UTF8 (~{1+}\r\ny)\r\nb NOOP\r\n",
			[]msg{{body: "abc"}, {body: utf8Message, utf8: true}, {body: "x\x00", binary: true}, {body: "y", utf8: true, flags: []imap.Flag{imap.FlagDraft}}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conts := 0
			r := NewReader(bufio.NewReader(strings.NewReader(tc.in)), Limits{}, func() error { conts++; return nil })
			cmd, err := r.ReadCommand()
			if err != nil {
				t.Fatal(err)
			}
			var got []msg
			for a := cmd.Args.(*Append); ; {
				m, err := a.Next()
				if err != nil {
					t.Fatal(err)
				}
				if m == nil {
					break
				}
				b, _ := io.ReadAll(m.Body)
				got = append(got, msg{body: string(b), utf8: m.UTF8, binary: m.Binary, flags: m.Options.Flags})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("messages\n got %+v\nwant %+v", got, tc.want)
			}
			if conts != tc.conts {
				t.Errorf("%d continuation requests, want %d", conts, tc.conts)
			}
			if cmd, err := r.ReadCommand(); err != nil || cmd.Name != "NOOP" {
				t.Fatalf("after APPEND: %+v %v", cmd, err)
			}
		})
	}
}

// TestAppendUTF8Malformed: a malformed UTF8 data item is BAD, the rest of
// the command is skipped, and a synchronizing literal that is not a
// literal8 is never invited (so its octets never arrive).
func TestAppendUTF8Malformed(t *testing.T) {
	for _, tc := range []struct {
		name, in, text string
		conts          int
	}{
		{"no parens", "a APPEND INBOX UTF8 ~{3+}\r\nabc\r\nb NOOP\r\n", `Expected '('`, 0},
		{"no space", "a APPEND INBOX UTF8(~{3+}\r\nabc)\r\nb NOOP\r\n", "Expected a space", 0},
		{"classic literal", "a APPEND INBOX UTF8 ({3}\r\nb NOOP\r\n", "must be a literal8", 0},
		{"classic non-sync literal", "a APPEND INBOX UTF8 ({3+}\r\nabc)\r\nb NOOP\r\n", "must be a literal8", 0},
		{"quoted string", "a APPEND INBOX UTF8 (\"abc\")\r\nb NOOP\r\n", "must be a literal8", 0},
		{"no closing paren", "a APPEND INBOX UTF8 (~{3+}\r\nabc\r\nb NOOP\r\n", `Missing ')'`, 0},
		{"closing paren later", "a APPEND INBOX UTF8 (~{3+}\r\nabc x)\r\nb NOOP\r\n", `Expected ')'`, 0},
		{"other item", "a APPEND INBOX CATENATE (TEXT {3+}\r\nabc)\r\nb NOOP\r\n", "Expected a message literal", 0},
		{"UTF9", "a APPEND INBOX UTF9 (~{3+}\r\nabc)\r\nb NOOP\r\n", "Unknown APPEND data item UTF9", 0},
		{"UTF8 alone", "a APPEND INBOX UTF8\r\nb NOOP\r\n", "Missing arguments", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, conts := readAll(t, tc.in, Limits{})
			if len(res) != 2 || res[1].cmd == nil || res[1].cmd.Name != "NOOP" {
				t.Fatalf("results %+v, want an error then NOOP", res)
			}
			var e *Error
			if !errors.As(res[0].err, &e) || e.Type != imap.StatusResponseTypeBad || e.Fatal || !strings.Contains(e.Text, tc.text) {
				t.Fatalf("error %v, want BAD with %q", res[0].err, tc.text)
			}
			if conts != tc.conts {
				t.Errorf("%d continuation requests, want %d", conts, tc.conts)
			}
		})
	}
}
