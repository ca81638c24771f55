package imap

import (
	"bufio"
	"compress/flate"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// imaplibCompressScript is a COMPRESS=DEFLATE client (RFC 4978) over
// Python's imaplib and zlib: raw DEFLATE (wbits -15) both ways, a sync
// flush after each command.
const imaplibCompressScript = `
import imaplib, zlib, sys
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
imaplib.Commands['COMPRESS'] = ('AUTH', 'SELECTED')

class IMAP4Z(imaplib.IMAP4):
    z = False
    def compress(self):
        typ, data = self._simple_command('COMPRESS', 'DEFLATE')
        assert typ == 'OK', (typ, data)
        self.zc = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.zd = zlib.decompressobj(-15)
        self.zbuf = b''
        self.z = True
    def send(self, data):
        if self.z:
            data = self.zc.compress(data) + self.zc.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)
    def fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise self.abort('connection closed')
        self.zbuf += self.zd.decompress(chunk)
    def read(self, size):
        if not self.z:
            return super().read(size)
        while len(self.zbuf) < size:
            self.fill()
        out, self.zbuf = self.zbuf[:size], self.zbuf[size:]
        return out
    def readline(self):
        if not self.z:
            return super().readline()
        while b'\n' not in self.zbuf:
            self.fill()
        i = self.zbuf.index(b'\n') + 1
        out, self.zbuf = self.zbuf[:i], self.zbuf[i:]
        return out

m = IMAP4Z(host, port)
assert 'COMPRESS=DEFLATE' not in m.capabilities, m.capabilities
typ, data = m.login(user, pw)
assert typ == 'OK', data
typ, data = m.capability()
assert b'COMPRESS=DEFLATE' in data[0], data
m.compress()
typ, data = m._simple_command('COMPRESS', 'DEFLATE')
assert typ == 'NO' and b'[COMPRESSIONACTIVE]' in data[0], (typ, data)
bodies = [b"Subject: small\r\n\r\nhello\r\n",
          b"Subject: large\r\n\r\n" + b"".join(b"line %d of a long message\r\n" % i for i in range(20000))]
for b in bodies:
    typ, data = m.append('INBOX', r'(\Flagged)', None, b)
    assert typ == 'OK' and b'APPENDUID' in data[0], data
typ, data = m.select('INBOX')
assert typ == 'OK' and data == [b'2'], data
typ, data = m.fetch('1:*', '(UID FLAGS RFC822.SIZE)')
assert typ == 'OK' and len(data) == 2, data
for d, b in zip(data, bodies):
    assert b'RFC822.SIZE %d' % len(b) in d and b'\\Flagged' in d, (d, len(b))
typ, data = m.noop()
assert typ == 'OK', data
typ, data = m.logout()
assert typ == 'BYE', (typ, data)
print("compress ok")
`

// TestCompress: COMPRESS=DEFLATE against Python's zlib, and a deflate bomb
// that must end the connection without storing anything.
func TestCompress(t *testing.T) {
	e := newEnv(t)
	t.Run("imaplib", func(t *testing.T) {
		py := needTool(t, "python3")
		script := filepath.Join(t.TempDir(), "compress.py")
		if err := os.WriteFile(script, []byte(imaplibCompressScript), 0o600); err != nil {
			t.Fatal(err)
		}
		host, port := splitHostPort(t, e.addr)
		if out := runTool(t, py, script, host, port, testUser, testPass); !strings.Contains(out, "compress ok") {
			t.Fatalf("imaplib: %s", out)
		}
	})
	// 4 KB of DEFLATE inflating to 4 MiB: far past the inflate ratio
	// once the grace megabyte is spent; as a message and as command text.
	const size = 4 << 20
	for _, bomb := range []struct{ name, head string }{
		{"an APPEND message", fmt.Sprintf("B1 APPEND INBOX {%d+}\r\n", size)},
		{"a command line", "B1 SEARCH SUBJECT "},
	} {
		t.Run("deflate bomb in "+bomb.name, func(t *testing.T) {
			before := inboxMessages(t, e)
			r := e.raw(t)
			r.login()
			r.send("C1 COMPRESS DEFLATE\r\n")
			if l := r.line(); l != "C1 OK DEFLATE active" {
				t.Fatalf("COMPRESS: %q", l)
			}
			zw, err := flate.NewWriter(r.c, flate.BestCompression)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(zw, bomb.head)
			chunk := []byte(strings.Repeat("a", 64<<10))
			r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			for n := 0; n < size; n += len(chunk) {
				if _, err := zw.Write(chunk); err != nil {
					break // the server may be gone already
				}
			}
			zw.Write([]byte("\r\n"))
			zw.Flush()
			// What the server sends now is deflated too.
			zr := bufio.NewReader(flate.NewReader(r.br))
			r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			var got []string
			for {
				l, err := zr.ReadString('\n')
				if l != "" {
					got = append(got, strings.TrimRight(l, "\r\n"))
				}
				if err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatalf("no BYE or close after the bomb: %q", got)
					}
					break
				}
			}
			// A BYE is sent; it may be lost to the reset of a connection
			// closed with the bomb's rest unread, but nothing else may come.
			for _, l := range got {
				if !strings.HasPrefix(l, "* BYE [LIMIT] ") {
					t.Fatalf("answers to the bomb: %q", got)
				}
			}
			t.Logf("answer to the bomb: %q", got)
			if n := inboxMessages(t, e); n != before {
				t.Fatalf("INBOX has %d messages, had %d: the bomb was stored", n, before)
			}
		})
	}
}

// inboxMessages asks STATUS on a new connection.
func inboxMessages(t *testing.T, e *env) int {
	t.Helper()
	r := e.raw(t)
	r.login()
	r.send("T1 STATUS INBOX (MESSAGES)\r\n")
	var n int
	lines := r.until("T1 ")
	for _, l := range lines {
		if _, err := fmt.Sscanf(l, "* STATUS INBOX (MESSAGES %d)", &n); err == nil {
			return n
		}
	}
	t.Fatalf("no STATUS: %q", lines)
	return 0
}
