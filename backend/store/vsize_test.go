package store

import (
	"bytes"
	"strings"
	"testing"
	"testing/iotest"
)

// hostileMessages are contents whose CRLF form is easy to get wrong; the
// POP3 tests use the same shapes.
var hostileMessages = []struct{ name, in, want string }{
	{"empty", "", ""},
	{"crlf", "A: b\r\n\r\nbody\r\n", "A: b\r\n\r\nbody\r\n"},
	{"bare LF", "A: b\n\nbody\n", "A: b\r\n\r\nbody\r\n"},
	{"bare CR", "A: b\r\rc\r\n", "A: b\r\rc\r\n"},
	{"mixed", "A: b\r\nC: d\n\r\nx\ry\nz\r\n", "A: b\r\nC: d\r\n\r\nx\ry\r\nz\r\n"},
	{"no final newline", "A: b\n\nlast", "A: b\r\n\r\nlast\r\n"},
	{"final bare CR", "A: b\n\nlast\r", "A: b\r\n\r\nlast\r\r\n"},
	{"CR CR LF", "\r\r\n", "\r\r\n"},
	{"lone LF", "\n", "\r\n"},
	{"lone CR", "\r", "\r\r\n"},
	{"dots", ".\n..\r\n.x\n", ".\r\n..\r\n.x\r\n"},
	{"header only", "Subject: x\nFrom: a@b", "Subject: x\r\nFrom: a@b\r\n"},
	{"long line", strings.Repeat("y", 70000) + "\n", strings.Repeat("y", 70000) + "\r\n"},
	{"CR at buffer edge", strings.Repeat("y", 32*1024-1) + "\r\n.", strings.Repeat("y", 32*1024-1) + "\r\n.\r\n"},
	{"8-bit and NUL", "\xff\x00\n", "\xff\x00\r\n"},
}

// TestVirtualSize checks the CRLF form and its size on every hostile
// shape, read whole and one byte at a time (so that a CRLF is split across
// writes).
func TestVirtualSize(t *testing.T) {
	for _, tt := range hostileMessages {
		t.Run(tt.name, func(t *testing.T) {
			for _, oneByte := range []bool{false, true} {
				var r = strings.NewReader(tt.in)
				var out bytes.Buffer
				var n int64
				var err error
				if oneByte {
					n, err = CopyCRLF(&out, iotest.OneByteReader(r))
				} else {
					n, err = CopyCRLF(&out, r)
				}
				if err != nil {
					t.Fatal(err)
				}
				if out.String() != tt.want || n != int64(len(tt.want)) {
					t.Errorf("oneByte=%v: CopyCRLF = %q (%d), want %q", oneByte, trunc(out.String()), n, trunc(tt.want))
				}
			}
			if n, err := VirtualSize(strings.NewReader(tt.in)); err != nil || n != int64(len(tt.want)) {
				t.Errorf("VirtualSize = %d, %v; want %d", n, err, len(tt.want))
			}
		})
	}
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func TestVSizeFromName(t *testing.T) {
	tests := []struct {
		base string
		n    int64
		ok   bool
	}{
		{"1700000000.M1P2.host,S=209,W=220", 220, true},
		{"1700000000.M1P2.host,W=220,S=209", 220, true},
		{"1700000000.M1P2.host,S=209", 0, false},
		{"1700000000.M1P2.host,W=", 0, false},
		{"1700000000.M1P2.host,W=-1", 0, false},
		{"1700000000.M1P2.host,W=99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		if n, ok := vsizeFromName(tt.base); n != tt.n || ok != tt.ok {
			t.Errorf("vsizeFromName(%q) = %d, %v", tt.base, n, ok)
		}
	}
}
