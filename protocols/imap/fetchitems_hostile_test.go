package imap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// TestFetchHostile: messages and requests built to hurt. Each answer
// must be a well-formed FETCH response (or a refusal written before
// anything else) and say what the case wants.
func TestFetchHostile(t *testing.T) {
	deep := deepMultipart(150) // beyond Dovecot's 100 levels
	var many strings.Builder
	many.WriteString("Content-Type: multipart/mixed; boundary=p\r\n\r\n")
	for i := 0; i < 12000; i++ {
		many.WriteString("--p\r\n\r\nx\r\n")
	}
	many.WriteString("--p--\r\n")
	hugeSubject := "Subject: " + strings.Repeat("s", 2<<20) + "\r\n\r\nbody\r\n"
	tests := []struct {
		name, msg, items string
		want             []string // substrings of the response
		code             goimap.ResponseCode
	}{
		{"deep nesting stops at the limit", string(deep), "BODYSTRUCTURE BODY.PEEK[1.2.2.2.2.2.2.2.2.2.1]",
			[]string{`BODY[1.2.2.2.2.2.2.2.2.2.1] {0}`, `"mixed"`}, ""},
		{"12000 parts, parsed up to Dovecot's 10000", many.String(), "BODY BODY.PEEK[9000] BODY.PEEK[11000]",
			[]string{"BODY[9000] {1}\r\nx", "BODY[11000] {0}"}, ""},
		{"unknown transfer encoding", "Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n", "BINARY.PEEK[1]", nil, goimap.ResponseCodeUnknownCTE},
		{"unknown encoding, size", "Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n", "UID BINARY.SIZE[1]", nil, goimap.ResponseCodeUnknownCTE},
		{"invalid base64", "Content-Transfer-Encoding: base64\r\n\r\nAA!A\r\n", "BINARY.PEEK[1]", nil, goimap.ResponseCodeParse},
		{"quoted-printable ending in a soft break", "Content-Transfer-Encoding: quoted-printable\r\n\r\nab=", "BINARY.SIZE[1]", nil, goimap.ResponseCodeParse},
		{"huge partial offset", "Subject: x\r\n\r\nbody\r\n", "BODY.PEEK[]<4294967295.4294967295> BODY.PEEK[TEXT]<2.4294967295>",
			[]string{"BODY[]<4294967295> {0}\r\n", "BODY[TEXT]<2> {4}\r\ndy\r\n"}, ""},
		{"huge part number", "Subject: x\r\n\r\nbody\r\n", "BODY.PEEK[4294967295] BINARY.PEEK[4294967295.1] BINARY.SIZE[7]",
			[]string{"BODY[4294967295] {0}", `BINARY[4294967295.1] {0}`, "BINARY.SIZE[7] 0"}, ""},
		{"NUL in a body literal becomes 0x80, BINARY keeps it", "Subject: a\x00b\r\n\r\nx\x00y\r\n", "BODY.PEEK[] BINARY.PEEK[1] ENVELOPE",
			[]string{"BODY[] {21}\r\nSubject: a\x80b\r\n\r\nx\x80y\r\n", "BINARY[1] ~{5}\r\nx\x00y\r\n", "{5}\r\na\uFFFDb"}, ""},
		{"header only, no line break", "Subject: x", "BODY.PEEK[TEXT] BODY.PEEK[HEADER] RFC822.TEXT BODYSTRUCTURE",
			[]string{"BODY[TEXT] {0}", "BODY[HEADER] {10}\r\nSubject: x", `"7bit" 0 0`}, ""},
		{"bare LF lines are sent as stored", "Subject: lf\n\nline\n", "BODY.PEEK[] BODY.PEEK[TEXT] BODYSTRUCTURE",
			[]string{"BODY[] {18}\r\nSubject: lf\n\nline\n", "BODY[TEXT] {5}\r\nline\n", `"7bit" 5 1`}, ""},
		{"empty message", "", "ENVELOPE BODYSTRUCTURE BODY.PEEK[] BINARY.SIZE[] BODY.PEEK[HEADER.FIELDS (A)]",
			[]string{"ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)", `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)`,
				"BODY[] {0}", "BINARY.SIZE[] 0", "BODY[HEADER.FIELDS (A)] {2}\r\n\r\n"}, ""},
		{"2 MiB subject is cut at 1 MiB", hugeSubject, "ENVELOPE", []string{fmt.Sprintf("{%d}\r\nsss", maxFieldKept-1)}, ""},
		{"boundary longer than a body line buffer", "Content-Type: multipart/mixed; boundary=" + strings.Repeat("b", 5000) + "\r\n\r\n--" + strings.Repeat("b", 5000) +
			"\r\nContent-Type: text/html\r\n\r\n<p>\r\n--" + strings.Repeat("b", 5000) + "--\r\n", "BODY",
			[]string{`(("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 3 0) "mixed")`}, ""},
		{"address list of commas and brackets", "From: ,,<<>>,@,:;,\"\r\n\r\n", "ENVELOPE", []string{"ENVELOPE (NIL NIL ((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")"}, ""},
		{"unterminated comment and quote", "From: (a (b \"c\r\nSubject: \"x\r\nContent-Type: text/plain; a=\"b\r\n\r\n", "ENVELOPE BODYSTRUCTURE",
			[]string{`ENVELOPE (NIL "\"x"`, `("text" "plain" ("charset" "us-ascii")`}, ""},
	}
	var corpus []corpusMessage
	for _, tc := range tests {
		corpus = append(corpus, corpusMessage{tc.name, []byte(tc.msg)})
	}
	f := fetchFolder(t, corpus)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seq := uint32(i + 1)
			got, err := ourFetch(t, f, seq, fmt.Sprintf("FETCH %d (%s)", seq, tc.items))
			if tc.code != "" {
				var ie *goimap.Error
				if !errors.As(err, &ie) || ie.Code != tc.code || len(got) != 0 {
					t.Fatalf("got %v and %q, want NO [%s] and nothing written", err, got, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := fetchItems(got); err != nil {
				t.Fatalf("malformed response: %v", err)
			}
			for _, w := range tc.want {
				if !bytes.Contains(got, []byte(w)) {
					t.Errorf("response lacks %.200q:\n%.600q", w, got)
				}
			}
		})
	}
}

// TestFetchOneIndexAndGone: index items are answered without the file
// (it is removed first); file items of a vanished file are answered as
// Dovecot does, gone set; forced flags, MODSEQ and UTF8=ACCEPT.
func TestFetchOneIndexAndGone(t *testing.T) {
	msg := "From: a@example.com\r\nSubject: caf\xc3\xa9\r\n\r\nbody\r\n"
	f, root := fetchStore(t, []corpusMessage{{"one", []byte(msg)}, {"two", []byte(msg)}})
	files, _ := filepath.Glob(filepath.Join(root, "*", "*", "Maildir", "*", "*"))
	removed := 0
	for _, p := range files {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && strings.Contains(filepath.Base(p), ",S=") {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			removed++
		}
	}
	if removed != 2 {
		t.Fatalf("removed %d message files, want 2 (%v)", removed, files)
	}
	run := func(cmd string, flags []string, modseq, utf8 bool) (string, bool) {
		t.Helper()
		args := parseFetchCommand(t, cmd)
		var out bytes.Buffer
		enc := wire.NewEncoder(bufio.NewWriter(&out))
		gone, err := fetchOne(context.Background(), enc, f, 1, f.Messages()[0], args, flags, modseq, utf8)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		enc.Flush()
		return out.String(), gone
	}
	m := f.Messages()[0]
	date := m.InternalDate.Format(wire.InternalDateLayout)
	tests := []struct {
		cmd          string
		flags        []string
		modseq, utf8 bool
		want         string
		wantGone     bool
	}{
		{"FETCH 1 (UID FLAGS INTERNALDATE RFC822.SIZE)", nil, false, false,
			fmt.Sprintf("* 1 FETCH (UID 1 FLAGS (\\Recent) INTERNALDATE \"%s\" RFC822.SIZE %d)\r\n", date, m.Size), false},
		{"FETCH 1 (RFC822.SIZE)", []string{`\Seen`}, true, false,
			fmt.Sprintf("* 1 FETCH (FLAGS (\\Seen) MODSEQ (%d) RFC822.SIZE %d)\r\n", m.ModSeq, m.Size), false},
		{"FETCH 1 (FLAGS ENVELOPE BODY.PEEK[] BODYSTRUCTURE BINARY.PEEK[1])", nil, false, false,
			"* 1 FETCH (UID 1 FLAGS (\\Recent) ENVELOPE (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL))\r\n", true},
		{"FETCH 1 (RFC822.TEXT)", nil, false, true, "* 1 FETCH (UID 1)\r\n", true},
	}
	for _, tc := range tests {
		got, gone := run(tc.cmd, tc.flags, tc.modseq, tc.utf8)
		if got != tc.want || gone != tc.wantGone {
			t.Errorf("%s:\n got  %q gone=%v\n want %q gone=%v", tc.cmd, got, gone, tc.want, tc.wantGone)
		}
	}
}

// TestFetchOneUTF8: with UTF8=ACCEPT an 8-bit subject is a quoted
// string, otherwise a literal.
func TestFetchOneUTF8(t *testing.T) {
	f := fetchFolder(t, []corpusMessage{{"utf8", []byte("Subject: caf\xc3\xa9\r\n\r\nx\r\n")}})
	for _, utf8 := range []bool{false, true} {
		args := parseFetchCommand(t, "FETCH 1 (ENVELOPE)")
		var out bytes.Buffer
		enc := wire.NewEncoder(bufio.NewWriter(&out))
		if _, err := fetchOne(context.Background(), enc, f, 1, f.Messages()[0], args, nil, false, utf8); err != nil {
			t.Fatal(err)
		}
		enc.Flush()
		want := "(NIL {5}\r\ncaf\xc3\xa9 "
		if utf8 {
			want = "(NIL \"caf\xc3\xa9\" "
		}
		if !strings.Contains(out.String(), want) || enc.UTF8 {
			t.Errorf("utf8=%v: %q lacks %q (or the encoder kept UTF8 on)", utf8, out.String(), want)
		}
	}
}

// TestFetchOneStreams: the items of a 23 MB message (a 16 MB base64
// attachment) are streamed from the file: fetching each allocates a
// small fraction of the message, whatever the item.
func TestFetchOneStreams(t *testing.T) {
	var b strings.Builder
	b.WriteString("From: big@example.com\r\nSubject: big\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\nContent-Type: text/plain\r\n\r\n")
	b.WriteString(strings.Repeat(strings.Repeat("t", 998)+"\r\n", 6<<10))
	b.WriteString("--z\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	line := strings.Repeat("QUJD", 19) + "\r\n" // 76 characters, 57 octets
	b.WriteString(strings.Repeat(line, (16<<20)/len(line)))
	b.WriteString("--z--\r\n")
	f := fetchFolder(t, []corpusMessage{{"big", []byte(b.String())}})
	m := f.Messages()[0]
	for _, items := range []string{"BODY.PEEK[]", "BODY.PEEK[2]", "BINARY.PEEK[2]", "BINARY.SIZE[2] BODYSTRUCTURE", "BINARY.PEEK[]<1000.10000000>", "BODY.PEEK[TEXT]<5.20000000>"} {
		args := parseFetchCommand(t, "FETCH 1 ("+items+")")
		cw := &countWriter{}
		enc := wire.NewEncoder(bufio.NewWriter(cw))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, err := fetchOne(context.Background(), enc, f, 1, m, args, nil, false, false); err != nil {
			t.Fatalf("%s: %v", items, err)
		}
		if err := enc.Flush(); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: %d octets sent, %d allocated", items, cw.n, alloc)
		if alloc > 2<<20 {
			t.Errorf("%s: %d octets allocated for %d sent; want the message streamed", items, alloc, cw.n)
		}
	}
}
