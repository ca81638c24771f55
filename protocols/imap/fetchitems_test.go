package imap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/internal/testdovecot"
	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// fetchFolder puts the corpus into a fresh store and selects it.
func fetchFolder(t testing.TB, corpus []corpusMessage) *store.Folder {
	t.Helper()
	f, _ := fetchStore(t, corpus)
	return f
}

// fetchStore is fetchFolder that also says where the store is.
func fetchStore(t testing.TB, corpus []corpusMessage) (*store.Folder, string) {
	t.Helper()
	ctx := context.Background()
	st := &store.Store{Root: t.TempDir(), Hostname: "test"}
	mb, err := st.OpenMailbox(ctx, store.Account{Address: "fetch@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range corpus {
		if _, err := mb.Append(ctx, "INBOX", bytes.NewReader(m.raw), store.AppendOptions{InternalDate: corpusDate(i)}); err != nil {
			t.Fatalf("append %s: %v", m.name, err)
		}
	}
	f, err := mb.Select(ctx, "INBOX", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, st.Root
}

// parseFetchCommand reads "FETCH n items" with the wire package's reader.
func parseFetchCommand(t testing.TB, cmd string) *wire.Fetch {
	t.Helper()
	r := wire.NewReader(bufio.NewReader(strings.NewReader("x "+cmd+"\r\n")), wire.Limits{}, func() error { return nil })
	c, err := r.ReadCommand()
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return c.Args.(*wire.Fetch)
}

// ourFetch runs fetchOne for message seq of f and returns the response
// or the error.
func ourFetch(t testing.TB, f *store.Folder, seq uint32, cmd string) ([]byte, error) {
	t.Helper()
	args := parseFetchCommand(t, cmd)
	var out bytes.Buffer
	enc := wire.NewEncoder(bufio.NewWriter(&out))
	_, err := fetchOne(context.Background(), enc, f, seq, f.Messages()[seq-1], args, nil, false, false)
	if ferr := enc.Flush(); err == nil {
		err = ferr
	}
	return out.Bytes(), err
}

// fetchItems parses the items of one "* n FETCH (...)" response into
// name → canonical value. Quoted strings and literals are the same
// value (Dovecot sends a literal where we may quote); a literal8 keeps
// a "~" mark.
func fetchItems(resp []byte) (map[string]string, error) {
	p := &respParser{b: resp}
	if !p.eat("* ") {
		return nil, fmt.Errorf("not an untagged response: %q", resp)
	}
	p.atom()
	if !p.eatFold(" FETCH (") {
		return nil, fmt.Errorf("not a FETCH response: %q", resp)
	}
	items := map[string]string{}
	for {
		name := p.itemName()
		if name == "" {
			return nil, fmt.Errorf("bad item name at %d in %q", p.i, resp)
		}
		if !p.eat(" ") {
			return nil, fmt.Errorf("no value for %s in %q", name, resp)
		}
		v, err := p.value()
		if err != nil {
			return nil, fmt.Errorf("%s: %w in %q", name, err, resp)
		}
		items[strings.ToUpper(name)] = v
		if p.eat(")") {
			return items, nil
		}
		if !p.eat(" ") {
			return nil, fmt.Errorf("junk after %s at %d in %q", name, p.i, resp)
		}
	}
}

type respParser struct {
	b []byte
	i int
}

func (p *respParser) eat(s string) bool {
	if bytes.HasPrefix(p.b[p.i:], []byte(s)) {
		p.i += len(s)
		return true
	}
	return false
}

func (p *respParser) eatFold(s string) bool {
	if len(p.b)-p.i >= len(s) && strings.EqualFold(string(p.b[p.i:p.i+len(s)]), s) {
		p.i += len(s)
		return true
	}
	return false
}

func (p *respParser) atom() string {
	start := p.i
	for p.i < len(p.b) && !strings.ContainsRune(" ()[]{\"\r\n", rune(p.b[p.i])) {
		p.i++
	}
	return string(p.b[start:p.i])
}

// itemName reads BODY[...]<n> style names, brackets included.
func (p *respParser) itemName() string {
	start := p.i
	p.atom()
	if p.i < len(p.b) && p.b[p.i] == '[' {
		for p.i < len(p.b) && p.b[p.i] != ']' {
			p.i++
		}
		p.i++
		if p.i < len(p.b) && p.b[p.i] == '<' {
			for p.i < len(p.b) && p.b[p.i] != '>' {
				p.i++
			}
			p.i++
		}
	}
	return string(p.b[start:min(p.i, len(p.b))])
}

func (p *respParser) value() (string, error) {
	if p.i >= len(p.b) {
		return "", errors.New("end of data")
	}
	switch c := p.b[p.i]; {
	case c == '(':
		p.i++
		var parts []string
		for !p.eat(")") {
			if len(parts) > 0 && !p.eat(" ") && (p.i >= len(p.b) || p.b[p.i] != '(') {
				return "", fmt.Errorf("bad list at %d", p.i)
			}
			v, err := p.value()
			if err != nil {
				return "", err
			}
			parts = append(parts, v)
		}
		return "(" + strings.Join(parts, " ") + ")", nil
	case c == '"':
		var b []byte
		p.i++
		for p.i < len(p.b) && p.b[p.i] != '"' {
			if p.b[p.i] == '\\' {
				p.i++
			}
			b = append(b, p.b[p.i])
			p.i++
		}
		p.i++
		return strconv.Quote(string(b)), nil
	case c == '{' || c == '~':
		mark := ""
		if p.eat("~") {
			mark = "~"
		}
		p.i++
		end := bytes.IndexByte(p.b[p.i:], '}')
		if end < 0 {
			return "", errors.New("bad literal")
		}
		n, err := strconv.Atoi(string(p.b[p.i : p.i+end]))
		if err != nil {
			return "", err
		}
		p.i += end + 1
		if !p.eat("\r\n") || p.i+n > len(p.b) {
			return "", errors.New("bad literal")
		}
		s := string(p.b[p.i : p.i+n])
		p.i += n
		return mark + strconv.Quote(s), nil
	default:
		return p.atom(), nil
	}
}

// fetchCommands are the FETCH items asked of every corpus message.
func fetchCommands() []string {
	items := []string{"UID", "RFC822.SIZE", "INTERNALDATE", "ENVELOPE", "BODY", "BODYSTRUCTURE",
		"BODY.PEEK[]", "BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]", "BODY.PEEK[]<5.20>", "BODY.PEEK[TEXT]<3.7>",
		"BODY.PEEK[]<100000.10>", "RFC822.HEADER", "RFC822", "RFC822.TEXT",
		"BODY.PEEK[HEADER.FIELDS (FROM SUBJECT X-NONE)]", "BODY.PEEK[HEADER.FIELDS.NOT (FROM CONTENT-TYPE)]",
		"BODY.PEEK[HEADER.FIELDS (SUBJECT)]<2.5>", "BINARY.PEEK[]", "BINARY.SIZE[]",
		"FAST", "ALL", "FULL", "UID BODY.PEEK[1] BINARY.SIZE[1] BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODYSTRUCTURE",
		"BODY[TEXT] BODY.PEEK[1.MIME] RFC822.SIZE ENVELOPE BODY.PEEK[2]<0.10>"}
	for _, part := range []string{"1", "2", "3", "4", "5", "6", "7", "9", "1.1", "1.2", "2.1", "2.2", "4.1", "4.2", "1.1.1", "2.1.1", "8", "10", "11"} {
		items = append(items, "BODY.PEEK["+part+"]", "BODY.PEEK["+part+".MIME]", "BODY.PEEK["+part+".HEADER]",
			"BODY.PEEK["+part+".TEXT]", "BODY.PEEK["+part+".HEADER.FIELDS (SUBJECT FROM)]",
			"BINARY.PEEK["+part+"]", "BINARY.SIZE["+part+"]", "BINARY.PEEK["+part+"]<3.9>")
	}
	return items
}

// TestFetchDovecotOracle puts the corpus into a private Dovecot's
// Maildir and into a store, asks both for each item of fetchCommands on
// each message, and compares the answers item by item (FLAGS aside:
// the sessions differ).
func TestFetchDovecotOracle(t *testing.T) {
	corpus := fetchCorpus(t)
	srv := testdovecot.Start(t)
	for i, m := range corpus {
		name := fmt.Sprintf("%d.M%dP1.oracle,S=%d:2,", 1700000000+i, i, len(m.raw))
		p := filepath.Join(srv.Maildir, "cur", name)
		if err := os.WriteFile(p, m.raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, corpusDate(i), corpusDate(i)); err != nil {
			t.Fatal(err)
		}
	}
	c := srv.Login(t)
	if _, err := c.Run("SELECT INBOX"); err != nil {
		t.Fatal(err)
	}
	f := fetchFolder(t, corpus)
	failures, crashes, compared, skipped := 0, 0, 0, 0
	for i, m := range corpus {
		seq := uint32(i + 1)
	items:
		for _, item := range fetchCommands() {
			cmd := fmt.Sprintf("FETCH %d (%s)", seq, item)
			if item == "FAST" || item == "ALL" || item == "FULL" {
				cmd = fmt.Sprintf("FETCH %d %s", seq, item) // a macro stands alone
			}
			want, werr := c.RunRaw(cmd)
			if werr != nil && !strings.Contains(werr.Error(), " NO ") && !strings.Contains(werr.Error(), " BAD ") {
				// Dovecot's imap process died on this item: note it,
				// and go on with a new connection.
				crashes++
				logs, _ := os.ReadFile(srv.Log)
				t.Logf("dovecot failed on %s %s (%v); its log ends:\n%s", m.name, cmd, werr, tail(string(logs), 3))
				c = srv.Login(t)
				if _, err := c.Run("SELECT INBOX"); err != nil {
					t.Fatal(err)
				}
				continue
			}
			for _, k := range fetchKnownDifferences {
				if k.message == m.name && strings.Contains(item, k.item) {
					skipped++
					continue items
				}
			}
			compared++
			got, gerr := ourFetch(t, f, seq, cmd)
			if msg := compareFetch(want, werr, got, gerr); msg != "" {
				failures++
				if failures <= 60 {
					t.Errorf("%s %s:\n%s", m.name, cmd, msg)
				}
			}
		}
	}
	if failures > 400 {
		t.Errorf("%d differences in all", failures)
	}
	t.Logf("%d messages, %d FETCH commands compared, %d known differences skipped, %d where Dovecot's imap process disconnected",
		len(corpus), compared, skipped, crashes)
}

// fetchKnownDifferences are the answers that differ from Dovecot's on
// purpose (see fetchOne).
var fetchKnownDifferences = []struct{ message, item, why string }{
	{"11-folded.eml", "BODYSTRUCTURE", "a folded Content-Transfer-Encoding value is read; Dovecot ignores it (7bit)"},
	{"11-folded.eml", "FULL", "the same, in BODY"},
	{"11-folded.eml", "BINARY", "the same: Dovecot answers NO [UNKNOWN-CTE]"},
	{"17-rfc822-base64.eml", "BINARY.SIZE", "Dovecot counts a message/rfc822 part in base64 as empty"},
	{"23-base64-edge.eml", "BINARY.SIZE", "the same for a message with a part that does not decode"},
	{"24-dup-content-type.eml", "BINARY", "of two Content-Transfer-Encoding fields BODYSTRUCTURE takes the first, Dovecot's BINARY the last; we take the first for both"},
	{"09-params.eml", "BINARY.SIZE", "Dovecot refuses BINARY.SIZE of every part of a message that has a part in an unknown encoding; we answer for the part asked"},
}

// compareFetch compares Dovecot's answer with ours; "" when they agree.
func compareFetch(want []byte, werr error, got []byte, gerr error) string {
	if werr != nil || gerr != nil {
		var ie *goimap.Error
		if werr != nil && errors.As(gerr, &ie) && strings.Contains(werr.Error(), "NO ["+string(ie.Code)+"]") {
			return ""
		}
		return fmt.Sprintf(" dovecot: %v\n ours:    %v", werr, gerr)
	}
	// Dovecot may add a FLAGS response (RFC822 and RFC822.TEXT set
	// \Seen); our response is one line.
	resp := want
	if i := bytes.Index(want, []byte("* ")); i >= 0 {
		resp = want[i:]
	}
	wi, err := fetchItems(resp)
	if err != nil {
		return fmt.Sprintf(" dovecot: %v", err)
	}
	gi, err := fetchItems(got)
	if err != nil {
		return fmt.Sprintf(" ours: %v", err)
	}
	delete(wi, "FLAGS")
	delete(gi, "FLAGS")
	var diffs []string
	for k, w := range wi {
		if g, ok := gi[k]; !ok {
			diffs = append(diffs, fmt.Sprintf(" %s missing; dovecot: %.300s", k, w))
		} else if g != w {
			// Show where they part.
			i := 0
			for i < len(w) && i < len(g) && w[i] == g[i] {
				i++
			}
			from := max(0, i-150)
			diffs = append(diffs, fmt.Sprintf(" %s, from octet %d:\n  dovecot: %.400s\n  ours:    %.400s", k, from, w[from:], g[from:]))
		}
	}
	for k := range gi {
		if _, ok := wi[k]; !ok {
			diffs = append(diffs, fmt.Sprintf(" %s: extra item", k))
		}
	}
	return strings.Join(diffs, "\n")
}
