package managesieve

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/scriptconn"
)

var fuzzSeeds = []string{
	"CAPABILITY\r\nNOOP \"t\"\r\nLOGOUT\r\n",
	"AUTHENTICATE \"PLAIN\" \"AG1lQGV4YW1wbGUuY29tAHNlY3JldA==\"\r\nLISTSCRIPTS\r\nPUTSCRIPT \"a\" {5+}\r\nkeep;\r\nSETACTIVE \"a\"\r\nGETSCRIPT \"a\"\r\nDELETESCRIPT \"a\"\r\nRENAMESCRIPT \"a\" \"b\"\r\nHAVESPACE \"b\" 10\r\nCHECKSCRIPT {8}\r\ndiscard;\r\nUNAUTHENTICATE\r\n",
	"AUTHENTICATE \"PLAIN\"\r\n{40+}\r\nAG1lQGV4YW1wbGUuY29tAHNlY3JldA==\r\nSETACTIVE \"\"\r\n",
	"AUTHENTICATE \"LOGIN\"\r\n\"bWVAZXhhbXBsZS5jb20=\"\r\n\"c2VjcmV0\"\r\nPUTSCRIPT \"x\" \"if true {\"\r\n",
	"NOOP \"abc\r\nNO\x00OP\r\n{5}\r\n\"\\x\"\r\nHAVESPACE \"a\" 99999999999999\r\nPUTSCRIPT {99999999+}\r\n",
	"STARTTLS\r\nAUTHENTICATE \"PLAIN\"\r\n\"*\"\r\n\n\r\n \r\nFROB \"a\" {0+}\r\n\r\n",
}

// FuzzReader: the command reader never panics, never returns a command
// it did not bound (names of atom octets, quoted strings within their
// limit, literals within theirs), and consumes its input.
func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &reader{br: bufio.NewReader(bytes.NewReader(in)), maxLiteral: 64}
		for range 1000 {
			name, args, err := r.command()
			var se *syntaxError
			if errors.As(err, &se) {
				if !se.atEOL && r.skipLine() != nil {
					return
				}
				continue
			}
			if err != nil {
				return
			}
			for i := 0; i < len(name); i++ {
				if !isAtomChar(name[i]) || name[i] >= 'a' && name[i] <= 'z' {
					t.Fatalf("name %q", name)
				}
			}
			if len(args) > maxArgs {
				t.Fatalf("%d arguments", len(args))
			}
			for _, a := range args {
				if a.kind == argString && int64(len(a.s)) > max(r.maxLiteral, maxQuoted) {
					t.Fatalf("a string of %d octets", len(a.s))
				}
			}
		}
	})
}

// FuzzSession runs whole sessions from a fuzzed stream: the server never
// panics or hangs, ends each response line with CRLF, and closes every
// session it opened exactly once.
//
//	go test -run '^$' -fuzz '^FuzzSession$' -parallel 1 ./protocols/managesieve/
func FuzzSession(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(uint8(0), []byte(s))
		f.Add(uint8(3), []byte(s))
	}
	b := newMemBackend()
	b.maxCount = 1000
	srv := &Server{Backend: b, AllowInsecureAuth: true, MaxScriptSize: 1000}
	ln := scriptconn.NewListener()
	go srv.Serve(ln)
	f.Cleanup(func() { srv.Close() })
	f.Fuzz(func(t *testing.T, chunk uint8, script []byte) {
		sc := scriptconn.New(script, int(chunk))
		sc.Remote = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4190}
		b.mu.Lock()
		closes := b.closes
		b.mu.Unlock()
		ln.Dial(sc)
		select {
		case <-sc.Done():
		case <-time.After(20 * time.Second):
			t.Fatalf("connection still open 20s after its input ended\nscript %q", script)
		}
		out := sc.Output()
		if !bytes.HasPrefix(out, []byte(`"IMPLEMENTATION" "vmaild"`)) || !bytes.HasSuffix(out, []byte("\r\n")) {
			t.Errorf("output %q", out)
		}
		// Logins are counted by their OK; each ends with one Close.
		logins := strings.Count(string(out), "OK \"Logged in\"\r\n")
		deadline := time.Now().Add(10 * time.Second)
		for {
			b.mu.Lock()
			n := b.closes - closes
			b.mu.Unlock()
			if n == logins || time.Now().After(deadline) {
				if n != logins {
					t.Errorf("%d logins, %d sessions closed\nscript %q", logins, n, script)
				}
				break
			}
			time.Sleep(time.Millisecond)
		}
	})
}
