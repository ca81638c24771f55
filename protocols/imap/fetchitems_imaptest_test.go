package imap

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestFetchImaptestScripts runs the FETCH commands of imaptest's fetch-*
// scripts through fetchOne over their own mailboxes and checks the
// answers as imaptest does: items in any order and case, a $variable
// matching anything (the same thing each time), {{{ }}} a literal
// (literal8 or not, CRs aside). The
// FLAGS responses the scripts expect after an implicit \Seen are the
// dispatcher's, so they are not checked here; nor are "!" lines (answers
// that must not come).
func TestFetchImaptestScripts(t *testing.T) {
	scripts, _ := filepath.Glob("testdata/fetch/imaptest/*.script")
	if len(scripts) == 0 {
		t.Fatal("no imaptest scripts in testdata/fetch/imaptest")
	}
	for _, script := range scripts {
		name := strings.TrimSuffix(filepath.Base(script), ".script")
		t.Run(name, func(t *testing.T) {
			mbox, err := os.ReadFile(strings.TrimSuffix(script, ".script") + ".mbox")
			if err != nil {
				t.Fatal(err)
			}
			var corpus []corpusMessage
			for i, m := range splitMbox(mbox) {
				corpus = append(corpus, corpusMessage{fmt.Sprintf("%s#%d", name, i+1), toCRLF(m)})
			}
			f := fetchFolder(t, corpus)
			vars := map[string]string{}
			steps := readImaptestScript(t, script)
			if len(steps) == 0 {
				t.Fatal("no FETCH commands read")
			}
			checked := 0
			defer func() {
				if checked == 0 {
					t.Error("no item checked")
				}
				t.Logf("%d items checked", checked)
			}()
			for _, st := range steps {
				for seq, want := range st.want {
					got, err := ourFetch(t, f, seq, fmt.Sprintf("FETCH %d %s", seq, st.items))
					if err != nil {
						t.Errorf("fetch %d %s: %v", seq, st.items, err)
						continue
					}
					gi, err := fetchItems(got)
					if err != nil {
						t.Errorf("fetch %d %s: %v", seq, st.items, err)
						continue
					}
					for k, w := range want {
						g, ok := gi[k]
						if !ok {
							t.Errorf("fetch %d %s: no %s in %q", seq, st.items, k, got)
							continue
						}
						// A script cannot write a bare CR or LF in a
						// literal: CRs are not compared (the Dovecot
						// oracle test compares exact octets).
						norm := strings.NewReplacer(`~"`, `"`, `\r`, "")
						g, w = norm.Replace(g), norm.Replace(w)
						if strings.HasPrefix(w, "$") {
							if prev, ok := vars[w]; ok {
								w = prev
							} else {
								vars[w] = g
								continue
							}
						}
						checked++
						if !strings.EqualFold(g, w) {
							t.Errorf("fetch %d %s: %s\n want %s\n got  %s", seq, st.items, k, w, g)
						}
					}
				}
			}
		})
	}
}

// imaptestStep is one "ok fetch" command with the items expected per
// message.
type imaptestStep struct {
	items string
	want  map[uint32]map[string]string
}

// readImaptestScript reads the FETCH commands of a script and their
// expected untagged responses.
func readImaptestScript(t *testing.T, path string) []imaptestStep {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	// The header ends at the first empty line.
	if i := strings.Index(text, "\n\n"); i >= 0 {
		text = text[i+2:]
	}
	var steps []imaptestStep
	var cur *imaptestStep
	var resp []string // lines of the expected responses of cur
	flush := func() {
		if cur == nil {
			return
		}
		if len(resp) == 0 {
			cur, resp = nil, nil
			return
		}
		for _, r := range splitResponses(strings.Join(resp, "\n")) {
			items, err := fetchItems([]byte(r))
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			delete(items, "FLAGS")
			if len(items) == 0 {
				continue
			}
			seq, _ := strconv.Atoi(strings.Fields(r)[1])
			if cur.want[uint32(seq)] == nil {
				cur.want[uint32(seq)] = map[string]string{}
			}
			for k, v := range items {
				cur.want[uint32(seq)][k] = v
			}
		}
		if len(cur.want) > 0 {
			steps = append(steps, *cur)
		}
		cur, resp = nil, nil
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	inLiteral, skipping := false, false
	for sc.Scan() {
		line := sc.Text()
		if inLiteral {
			if !skipping {
				resp = append(resp, line)
			}
			inLiteral = !strings.HasPrefix(line, "}}}")
			continue
		}
		switch {
		case strings.HasPrefix(line, "ok fetch "):
			flush()
			f := strings.Fields(line)
			cur = &imaptestStep{items: strings.Join(f[3:], " "), want: map[uint32]map[string]string{}}
			if f[2] == "1:*" {
				cur.items = "1:* " + cur.items // expanded below
			}
			skipping = false
		case strings.HasPrefix(line, "* "):
			skipping = false
			resp = append(resp, line)
		case strings.HasPrefix(line, "! "):
			skipping = true
		case strings.HasPrefix(line, "ok ") || strings.HasPrefix(line, "#"):
			flush()
			skipping = false
			continue
		case line == "":
			continue
		default:
			if !skipping {
				resp = append(resp, line)
			}
		}
		if strings.HasSuffix(line, "{{{") {
			inLiteral = true
		}
	}
	flush()
	for i := range steps {
		steps[i].items = strings.TrimPrefix(steps[i].items, "1:* ")
	}
	return steps
}

// splitResponses turns expected text into wire responses: "{{{" lines
// "}}}" become literals with CRLF line ends (the line break before "}}}"
// is not content).
func splitResponses(text string) []string {
	var out []string
	var b strings.Builder
	for len(text) > 0 {
		i := strings.Index(text, "{{{\n")
		if i < 0 {
			b.WriteString(text)
			break
		}
		b.WriteString(text[:i])
		rest := text[i+4:]
		end := strings.Index(rest, "\n}}}")
		content := ""
		if end >= 0 {
			content, rest = rest[:end], rest[end+4:]
		} else if strings.HasPrefix(rest, "}}}") {
			rest = rest[3:]
		}
		content = strings.ReplaceAll(content, "\n", "\r\n")
		fmt.Fprintf(&b, "{%d}\r\n%s", len(content), content)
		text = rest
	}
	for _, r := range strings.Split(b.String(), "\n* ") {
		if !strings.HasPrefix(r, "* ") {
			r = "* " + r
		}
		out = append(out, strings.TrimRight(r, "\n"))
	}
	return out
}
