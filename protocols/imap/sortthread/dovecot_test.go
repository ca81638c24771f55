package sortthread

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/vmaild/vmaild/internal/testdovecot"
)

// corpus reads testdata/corpus in file-name order as CRLF messages with
// made-up internal dates (groups of three share one, so ARRIVAL has ties).
func corpus(t testing.TB) ([]Message, [][]byte) {
	t.Helper()
	files, err := filepath.Glob("testdata/corpus/*.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus: %v (%d files)", err, len(files))
	}
	base := time.Date(2024, 2, 1, 8, 0, 0, 0, time.UTC)
	var msgs []Message
	var raws [][]byte
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raw := bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		m := Message{
			Seq:          uint32(i + 1),
			UID:          uint32(i + 1),
			InternalDate: base.Add(time.Duration(i/3) * time.Hour),
			Size:         int64(len(raw)),
		}
		m.SetHeader(h)
		msgs = append(msgs, m)
		raws = append(raws, raw)
	}
	return msgs, raws
}

// TestDovecotOracle delivers the corpus to a private Dovecot and compares
// its SORT and THREAD answers with this package's, byte for byte.
func TestDovecotOracle(t *testing.T) {
	msgs, raws := corpus(t)
	srv := testdovecot.Start(t)
	c := srv.Login(t)
	for i, raw := range raws {
		date := msgs[i].InternalDate.Format("02-Jan-2006 15:04:05 -0700")
		if _, err := c.RunLiteral(fmt.Sprintf("APPEND INBOX (\\Seen) %q", date), raw); err != nil {
			time.Sleep(time.Second)
			logs, _ := os.ReadFile(srv.Log)
			t.Fatalf("%v\n%s", err, logs)
		}
	}
	if _, err := c.Run("SELECT INBOX"); err != nil {
		t.Fatal(err)
	}
	// The oracle must see the messages as we describe them.
	lines, err := c.Run("FETCH 1:* (UID RFC822.SIZE)")
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range lines {
		want := fmt.Sprintf("%d FETCH (UID %d RFC822.SIZE %d)", i+1, msgs[i].UID, msgs[i].Size)
		if l != want {
			t.Fatalf("dovecot has %q, the test assumes %q", l, want)
		}
	}

	var criteria [][]Criterion
	for k := Arrival; k <= DisplayTo; k++ {
		criteria = append(criteria, []Criterion{{Key: k}}, []Criterion{{Key: k, Reverse: true}})
	}
	criteria = append(criteria,
		[]Criterion{{Key: Subject}, {Key: Date, Reverse: true}},
		[]Criterion{{Key: From, Reverse: true}, {Key: Subject}, {Key: Size, Reverse: true}},
		[]Criterion{{Key: Arrival, Reverse: true}, {Key: Cc}},
		[]Criterion{{Key: DisplayTo}, {Key: DisplayFrom, Reverse: true}, {Key: Arrival}},
		[]Criterion{{Key: To, Reverse: true}, {Key: Date}},
	)
	for _, crit := range criteria {
		var names []string
		for _, c := range crit {
			if c.Reverse {
				names = append(names, "REVERSE")
			}
			names = append(names, c.Key.String())
		}
		cmd := "SORT (" + strings.Join(names, " ") + ") UTF-8 ALL"
		got, err := c.Run(cmd)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		var b strings.Builder
		b.WriteString("SORT")
		for _, m := range Sort(msgs, crit) {
			fmt.Fprintf(&b, " %d", m.Seq)
		}
		if want := oneLine(got, "SORT"); b.String() != want {
			t.Errorf("%s\n dovecot: %s\n ours:    %s", cmd, want, b.String())
		}
	}
	for _, alg := range []Algorithm{OrderedSubject, References} {
		for _, uid := range []bool{false, true} {
			cmd := "THREAD " + alg.String() + " UTF-8 ALL"
			if uid {
				cmd = "UID " + cmd
			}
			got, err := c.Run(cmd)
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			ours := "THREAD " + FormatThreads(Thread(msgs, alg), uid)
			if want := oneLine(got, "THREAD"); ours != want {
				t.Errorf("%s\n dovecot: %s\n ours:    %s", cmd, want, ours)
			}
		}
	}
}

// oneLine picks the untagged response named name.
func oneLine(lines []string, name string) string {
	for _, l := range lines {
		if l == name || strings.HasPrefix(l, name+" ") {
			return strings.TrimRight(l, " ")
		}
	}
	return "(no " + name + " response in " + strings.Join(lines, " | ") + ")"
}
