package wire

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// FuzzReadCommand feeds arbitrary client streams to the Reader: it must
// never panic, always end, and give either commands, *Errors (after
// which it reads on unless fatal) or the stream's end.
func FuzzReadCommand(f *testing.F) {
	for _, tc := range validCommands {
		f.Add(tc.in + "\r\n")
	}
	for _, tc := range badInput {
		if len(tc.in) < 4096 {
			f.Add(tc.in)
		}
	}
	f.Add("a APPEND INBOX (\\Seen) {5+}\r\nhello ~{3+}\r\na\x00b\r\nb NOOP\r\n")
	f.Add("a NOOP x{11+}\r\nb LOGOUT\r\n\r\nc NOOP\r\n")
	// RFC 6855's UTF8 data item, whole and broken.
	f.Add("a APPEND INBOX (\\Seen) UTF8 (~{5+}\r\nh\xc3\xa9!!) {1+}\r\nx UTF8 (~{1+}\r\ny)\r\nb NOOP\r\n")
	f.Add("a APPEND INBOX UTF8 (~{3+}\r\nabc\r\nb NOOP\r\n")
	f.Add("a APPEND INBOX UTF8 ({3+}\r\nabc)\r\nb NOOP\r\n")
	f.Add("a APPEND INBOX UTF8 ~{3}\r\nb NOOP\r\n")
	f.Add("a SEARCH \"a\r\nb\" NOOP\r\n")
	for _, line := range imaptestLines(f) {
		f.Add(line + "\r\n")
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := NewReader(bufio.NewReader(strings.NewReader(in)), Limits{Line: 512, Literal: 256, Append: 512, Command: 2048}, func() error { return nil })
		for i := 0; ; i++ {
			if i > len(in)+1 {
				t.Fatalf("more commands than octets")
			}
			cmd, err := r.ReadCommand()
			if err == nil {
				if cmd.Tag == "" || cmd.Name == "" {
					t.Fatalf("command without tag or name: %+v", cmd)
				}
				if a, ok := cmd.Args.(*Append); ok {
					for j := 0; ; j++ {
						m, err := a.Next()
						if err != nil || m == nil {
							break
						}
						if m.Size > 512 {
							t.Fatalf("APPEND message of %d octets over the limit", m.Size)
						}
						io.Copy(io.Discard, m.Body)
					}
				}
				continue
			}
			var e *Error
			if errors.As(err, &e) {
				if e.Text == "" || e.Tag == "" {
					t.Fatalf("error without text or tag: %+v", e)
				}
				if !e.Fatal {
					continue
				}
			}
			return
		}
	})
}

// imaptestLines returns the command lines of imaptest's compliance
// scripts when its source tarball is at hand (shared/tools/imaptest
// above the module); they are read from the archive, never stored here.
func imaptestLines(tb testing.TB) []string {
	var tarball string
	dir, _ := os.Getwd()
	for i := 0; i < 8 && tarball == ""; i++ {
		m, _ := filepath.Glob(filepath.Join(dir, "shared", "tools", "imaptest", "imaptest-*.tar.gz"))
		if len(m) > 0 {
			tarball = m[0]
		}
		dir = filepath.Dir(dir)
	}
	if tarball == "" {
		return nil
	}
	fh, err := os.Open(tarball)
	if err != nil {
		return nil
	}
	defer fh.Close()
	zr, err := gzip.NewReader(fh)
	if err != nil {
		return nil
	}
	cmdLine := regexp.MustCompile(`^(?:\d+ )?(?:ok|no|bad) (.+)$`)
	// Other script variables ($uid, $uidvalidity...) stand for numbers.
	scriptVar := regexp.MustCompile(`\$\{?[a-z][a-z0-9_]*\}?`)
	var lines []string
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if !strings.Contains(h.Name, "/tests/") || h.Typeflag != tar.TypeReg || strings.HasSuffix(h.Name, ".mbox") {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, 1<<20))
		if err != nil {
			break
		}
		for _, l := range strings.Split(string(data), "\n") {
			m := cmdLine.FindStringSubmatch(l)
			if m == nil || strings.HasPrefix(m[1], "[") || strings.EqualFold(strings.TrimSpace(m[1]), "append") {
				continue // a response code to expect, or imaptest's own APPEND
			}
			cmd := strings.NewReplacer("${mailbox}", "INBOX", "$mailbox", "INBOX", "${sep}", "/").Replace(m[1])
			lines = append(lines, "a "+scriptVar.ReplaceAllString(cmd, "1"))
		}
	}
	return lines
}

// refusedOnPurpose are imaptest script lines the Reader refuses by
// design: extensions vmaild does not offer (CATENATE, URLAUTH, NOTIFY,
// CONTEXT=SEARCH, PARTIAL), imaptest's own placeholders ({{{ and APPEND
// lines it completes itself), and the invalid commands the scripts expect
// a BAD for.
var refusedOnPurpose = regexp.MustCompile(`(?i)urlfetch|genurlauth|resetkey|catenate|\{\{\{|\(partial|\(update|^a notify|^a cancelupdate|imaptest|\(recursivematch|^a append INBOX2?( \([^)]*\))?$`)

// TestImaptestLines parses every command line of imaptest's compliance
// scripts (when at hand): they are commands a real conformance suite
// sends, so each refusal must be deliberate (refusedOnPurpose).
func TestImaptestLines(t *testing.T) {
	lines := imaptestLines(t)
	if len(lines) == 0 {
		t.Skip("imaptest source tarball not found above the module")
	}
	refused := 0
	for _, l := range lines {
		res, _ := readAll(t, l+"\r\n", Limits{})
		for _, r := range res {
			if r.err != nil {
				refused++
				if !refusedOnPurpose.MatchString(l) {
					t.Errorf("refused %q: %v", l, r.err)
				}
			}
		}
	}
	t.Logf("%d command lines, %d refused", len(lines), refused)
}
