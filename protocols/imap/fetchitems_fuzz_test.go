package imap

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// FuzzFetchOne feeds arbitrary messages and FETCH item lists to the
// writer behind fetchOne (writeFetch, over the message in memory rather
// than a store file, so that inputs cost microseconds): it must not
// panic, must answer a well-formed FETCH response whose literals have
// the sizes they announce, or refuse with an *imap.Error before writing
// anything; the MIME tree must stay inside the message.
func FuzzFetchOne(f *testing.F) {
	specs := []string{"BODYSTRUCTURE ENVELOPE", "BODY.PEEK[1.2.MIME] BODY.PEEK[2.1]<1.5>", "BINARY.PEEK[1] BINARY.SIZE[2]",
		"BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)] BODY.PEEK[1.HEADER.FIELDS.NOT (TO)]", "RFC822 RFC822.HEADER RFC822.TEXT BINARY.PEEK[]<3.7>",
		"BODY BODY.PEEK[1.TEXT] BODY.PEEK[TEXT]<0.4>"}
	for i, m := range fetchCorpus(f) {
		if len(m.raw) < 8<<10 {
			f.Add(m.raw, specs[i%len(specs)])
		}
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n--a--"), "BODYSTRUCTURE BINARY.PEEK[1]")
	f.Fuzz(func(t *testing.T, raw []byte, spec string) {
		if strings.ContainsAny(spec, "\r\n{") {
			return // one command line, no literals
		}
		r := wire.NewReader(bufio.NewReader(strings.NewReader("x FETCH 1 ("+spec+")\r\n")), wire.Limits{}, func() error { return nil })
		cmd, err := r.ReadCommand()
		if err != nil {
			return
		}
		args := cmd.Args.(*wire.Fetch)
		fm := &fetchMessage{r: bytes.NewReader(raw), size: int64(len(raw))}
		checkTree(t, fm.tree(), int64(len(raw)))
		var out bytes.Buffer
		enc := wire.NewEncoder(bufio.NewWriter(&out))
		m := store.Message{UID: 1, Size: int64(len(raw)), InternalDate: time.Unix(0, 0).UTC()}
		err = writeFetch(enc, 1, m, &fetchMessage{r: bytes.NewReader(raw), size: int64(len(raw))}, false, args, nil, true, false)
		if ferr := enc.Flush(); err == nil && ferr != nil {
			t.Fatal(ferr)
		}
		var ie *goimap.Error
		switch {
		case errors.As(err, &ie):
			if out.Len() != 0 {
				t.Fatalf("refused with %v after writing %q", err, out.Bytes())
			}
		case err != nil:
			t.Fatalf("FETCH (%s): %v", spec, err)
		default:
			if _, err := fetchItems(out.Bytes()); err != nil || !bytes.HasSuffix(out.Bytes(), []byte(")\r\n")) {
				t.Fatalf("FETCH (%s): malformed response (%v): %q", spec, err, out.Bytes())
			}
		}
	})
}

// checkTree checks that every part lies inside the message and inside
// its parent.
func checkTree(t *testing.T, p *mimePart, size int64) {
	t.Helper()
	if p.off < 0 || p.headerSize < 0 || p.bodySize < 0 || p.lines < 0 || p.end() > size {
		t.Fatalf("part out of the message (%d octets): off %d header %d body %d lines %d", size, p.off, p.headerSize, p.bodySize, p.lines)
	}
	for _, c := range p.children {
		if c.off < p.bodyOff() || c.end() > p.end() {
			t.Fatalf("child [%d,%d) outside its parent's body [%d,%d)", c.off, c.end(), p.bodyOff(), p.end())
		}
		checkTree(t, c, size)
	}
}
