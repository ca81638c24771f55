package pop3

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/scriptconn"
)

// FuzzSession runs whole POP3 sessions from a fuzzed command stream against
// a maildrop whose messages have every kind of line ending and leading
// dots. The server must never panic or hang, must frame every line it
// sends with CRLF (message content included, so a multi-line response can
// only end where the server ends it), must close every maildrop it opened
// exactly once, and must delete nothing unless the client said QUIT.
//
// Run long with ./fuzz.sh, or
//
//	go test -run '^$' -fuzz '^FuzzSession$' -parallel 1 ./protocols/pop3/
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"CAPA\r\nUSER u\r\nPASS p\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 1\r\nDELE 1\r\nRSET\r\nDELE 3\r\nQUIT\r\n",
		"USER u\r\nPASS p\r\nRETR 2\r\nRETR 3\r\nRETR 4\r\nLIST 9\r\nDELE 0\r\nTOP 1 -1\r\nNOOP x\r\n",
		"AUTH PLAIN AHUAcA==\r\nLIST 1\r\nUIDL 2\r\nDELE 2\r\nQUIT\r\n",
		"AUTH LOGIN\r\ndQ==\r\ncA==\r\nSTAT\r\n",
		"AUTH PLAIN\r\n*\r\nUSER u\r\nQUIT\r\nSTAT\r\n",
		"STLS\r\nUSER u\nPASS p\r\n\x00\r\nRETR 1 2\r\nTOP 1 99999999999999999999\r\n",
		"USER u\r\nPASS wrong\r\nUSER u\r\nPASS p\r\nDELE 1\r\nDELE 1\r\nquit\r\n",
	} {
		f.Add(uint8(0), []byte(s))
	}
	b := newMemBackend()
	srv := &Server{Backend: b, Hostname: "pop.example.org", AllowInsecureAuth: true}
	ln := scriptconn.NewListener()
	go srv.Serve(ln)
	f.Fuzz(func(t *testing.T, chunk uint8, script []byte) {
		b.add("u", "p", fuzzMessages...)
		b.mu.Lock()
		deletes, opens := b.deletes, b.opens
		b.mu.Unlock()
		sc := scriptconn.New(script, int(chunk))
		sc.Remote = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1110}
		ln.Dial(sc)
		select {
		case <-sc.Done():
		case <-time.After(20 * time.Second):
			t.Fatalf("connection still open 20s after its input ended: the server hangs\nscript %q", script)
		}
		out := sc.Output()
		if !bytes.HasPrefix(out, []byte("+OK ")) {
			t.Errorf("no greeting: %q", out)
		}
		if i := bareLF(out); i >= 0 || len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
			t.Errorf("output not framed by CRLF (bare LF at %d)", i)
		}
		b.mu.Lock()
		opened, deleted, open := b.opens-opens, b.deletes-deletes, b.opens-b.closes
		b.mu.Unlock()
		if deleted > 0 && !bytes.Contains(bytes.ToUpper(script), []byte("QUIT")) {
			t.Errorf("messages deleted without QUIT")
		}
		if opened > 1 || open != 0 {
			t.Errorf("%d maildrops opened on one connection, %d left open", opened, open)
		}
		if t.Failed() {
			t.Logf("script %q\noutput %q", script, out)
		}
	})
}

// fuzzMessages have lines ending in CRLF, LF and lone CR, lines that are
// or start with a dot, no final line ending, and nothing at all.
var fuzzMessages = []string{
	"Subject: crlf\r\n\r\nbody\r\n.\r\n..\r\n.x\r\n",
	"Subject: lf\n\n.\nline\n",
	"Subject: cr\r\n\r\na\rb\r\r\n.",
	"",
}

// bareLF returns the index of the first LF not preceded by CR, or -1.
func bareLF(b []byte) int {
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			return i
		}
	}
	return -1
}

// FuzzTransfer checks transfer, which normalises line endings and
// dot-stuffs every message on its way out, against a plain model of what
// it must produce: each line of the content with its ending made CRLF (a
// CR not followed by LF is content), a CRLF after a last line without one;
// with stuffing, a second dot in front of every line starting with one, so
// that no line of a message is ever the lone "." that ends a multi-line
// response; for TOP, the header, the blank line and the first n body lines
// only. Size must count what RETR sends before stuffing.
func FuzzTransfer(f *testing.F) {
	for _, m := range fuzzMessages {
		f.Add([]byte(m), true, int8(-1))
		f.Add([]byte(m), false, int8(1))
	}
	f.Add([]byte(strings.Repeat("x", 40000)+"\r\n.\r"), true, int8(0))
	f.Fuzz(func(t *testing.T, msg []byte, stuff bool, top int8) {
		bodyLines := int(top)
		if bodyLines < 0 {
			bodyLines = -1
		}
		var out bytes.Buffer
		n, err := transfer(&out, bytes.NewReader(msg), stuff, bodyLines)
		if err != nil {
			t.Fatal(err)
		}
		lines := modelLines(msg, bodyLines)
		var want, wantStuffed bytes.Buffer
		for _, l := range lines {
			want.WriteString(l + "\r\n")
			if strings.HasPrefix(l, ".") {
				wantStuffed.WriteByte('.')
			}
			wantStuffed.WriteString(l + "\r\n")
		}
		if stuff {
			if !bytes.Equal(out.Bytes(), wantStuffed.Bytes()) {
				t.Fatalf("transfer(%q, stuffed, %d) = %q, want %q", msg, bodyLines, out.Bytes(), wantStuffed.Bytes())
			}
			if bytes.HasPrefix(out.Bytes(), []byte(".\r\n")) || bytes.Contains(out.Bytes(), []byte("\r\n.\r\n")) {
				t.Fatalf("a stuffed message contains the terminator: %q", out.Bytes())
			}
		} else if !bytes.Equal(out.Bytes(), want.Bytes()) {
			t.Fatalf("transfer(%q, %d) = %q, want %q", msg, bodyLines, out.Bytes(), want.Bytes())
		}
		if n != int64(want.Len()) {
			t.Fatalf("transfer counted %d octets, sent %d before stuffing", n, want.Len())
		}
		if bodyLines < 0 {
			if size, err := Size(bytes.NewReader(msg)); err != nil || size != n {
				t.Fatalf("Size = %d, %v; RETR sends %d", size, err, n)
			}
		}
	})
}

// modelLines splits content into lines the simple way: at LF, dropping a
// CR just before it; a last line without LF is a line too. For TOP it keeps
// the header up to the first empty line, that line, and bodyLines more.
func modelLines(msg []byte, bodyLines int) []string {
	s := string(msg)
	var lines []string
	for s != "" {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			lines = append(lines, s)
			break
		}
		lines = append(lines, strings.TrimSuffix(s[:i], "\r"))
		s = s[i+1:]
	}
	if bodyLines < 0 {
		return lines
	}
	for i, l := range lines {
		if l == "" {
			return lines[:min(len(lines), i+1+bodyLines)]
		}
	}
	return lines
}
