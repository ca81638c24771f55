package delivery

import (
	"bytes"
	"io"
	"testing"
)

// TestPrefixedReadAt reads a prefixed message at every offset with
// buffers of every size across the seam.
func TestPrefixedReadAt(t *testing.T) {
	head, body := []byte("DKIM-Signature: x\r\n"), []byte("From: a@b\r\n\r\nbody\r\n")
	want := append(append([]byte{}, head...), body...)
	m := prefixed(head, bytesMessage{bytes.NewReader(body)})
	if m.Size() != int64(len(want)) {
		t.Fatalf("size %d, want %d", m.Size(), len(want))
	}
	for off := 0; off <= len(want); off++ {
		for n := 1; n <= len(want)+1; n++ {
			buf := make([]byte, n)
			got, err := m.ReadAt(buf, int64(off))
			end := min(off+n, len(want))
			if !bytes.Equal(buf[:got], want[off:end]) || (got < n && err != io.EOF) {
				t.Fatalf("ReadAt(%d bytes, %d) = %q, %v; want %q", n, off, buf[:got], err, want[off:end])
			}
		}
	}
	if all, err := io.ReadAll(io.NewSectionReader(m, 0, m.Size())); err != nil || !bytes.Equal(all, want) {
		t.Errorf("read whole: %q %v", all, err)
	}
}
