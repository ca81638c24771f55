package imap

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// corpusMessage is one message of the FETCH corpus: imaptest's fetch-*
// mailboxes (testdata/fetch/imaptest/*.mbox) and the hostile ones
// (testdata/fetch/hostile, generated ones), in CRLF form.
type corpusMessage struct {
	name string
	raw  []byte
}

// fetchCorpus loads the corpus in a fixed order.
func fetchCorpus(t testing.TB) []corpusMessage {
	t.Helper()
	var out []corpusMessage
	mboxes, _ := filepath.Glob("testdata/fetch/imaptest/*.mbox")
	sort.Strings(mboxes)
	for _, p := range mboxes {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range splitMbox(b) {
			out = append(out, corpusMessage{fmt.Sprintf("%s#%d", filepath.Base(p), i+1), toCRLF(m)})
		}
	}
	emls, _ := filepath.Glob("testdata/fetch/hostile/*.eml")
	sort.Strings(emls)
	for _, p := range emls {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, corpusMessage{filepath.Base(p), toCRLF(b)})
	}
	out = append(out, corpusMessage{"deep-multipart", deepMultipart(60)}, corpusMessage{"deep-rfc822", deepRFC822(30)},
		corpusMessage{"deeper-multipart", deepMultipart(120)}, corpusMessage{"deeper-rfc822", deepRFC822(120)},
		corpusMessage{"long-lines", longLines()})
	return out
}

// splitMbox splits an mbox as imaptest reads it: each "From " line
// starts a message, which runs up to the next one (its last empty line
// included).
func splitMbox(b []byte) [][]byte {
	var out [][]byte
	var cur []byte
	started := false
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line = b[:i+1]
		}
		b = b[len(line):]
		if bytes.HasPrefix(line, []byte("From ")) {
			if started {
				out = append(out, cur)
			}
			cur, started = nil, true
			continue
		}
		cur = append(cur, line...)
	}
	if started {
		out = append(out, cur)
	}
	return out
}

// toCRLF turns bare LFs into CRLF, as SMTP and APPEND deliver messages.
func toCRLF(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

// deepMultipart nests n multiparts, each with a text part beside the
// next level.
func deepMultipart(n int) []byte {
	var b strings.Builder
	b.WriteString("From: deep@example.com\r\nSubject: deep multipart\r\nMIME-Version: 1.0\r\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\nContent-Type: text/plain\r\n\r\nlevel %d\r\n--b%d\r\n", i, i, i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\nbottom\r\n")
	for i := n - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return []byte(b.String())
}

// deepRFC822 nests n message/rfc822 parts.
func deepRFC822(n int) []byte {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "From: level%d@example.com\r\nSubject: level %d\r\nContent-Type: message/rfc822\r\n\r\n", i, i)
	}
	b.WriteString("From: bottom@example.com\r\nSubject: bottom\r\n\r\nbottom body\r\n")
	return []byte(b.String())
}

// corpusDate is the internal date of corpus message i.
func corpusDate(i int) time.Time {
	return time.Date(2024, 3, 1, 9, 30, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
}

// longLines has a header field and a body line far longer than any
// buffer.
func longLines() []byte {
	var b strings.Builder
	b.WriteString("From: long@example.com\r\nSubject: " + strings.Repeat("s", 100<<10) + "\r\n")
	b.WriteString("X-Folded: a\r\n" + strings.Repeat(" folded line\r\n", 5000))
	b.WriteString("Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	b.WriteString(strings.Repeat("=41", 70<<10) + "\r\n" + strings.Repeat("x", 200<<10) + "=\r\nend\r\n")
	return []byte(b.String())
}
