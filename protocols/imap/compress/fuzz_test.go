package compress

import (
	"bufio"
	"bytes"
	"compress/flate"
	"io"
	"strconv"
	"testing"
)

// FuzzReader feeds arbitrary octets to the bounded inflater: it must end
// in an error or io.EOF, never inflate past its limits, and end with
// io.EOF only where flate itself reads the same octets to the end of a
// stream or to where the client hung up.
func FuzzReader(f *testing.F) {
	var valid bytes.Buffer
	fw, _ := flate.NewWriter(&valid, DefaultLevel)
	fw.Write([]byte("a1 LOGIN user pass\r\na2 SELECT INBOX\r\n"))
	fw.Flush()
	f.Add(valid.Bytes())
	f.Add([]byte{0x00, 0x00, 0x00, 0xff, 0xff})
	f.Add([]byte{0x07})
	f.Add(bomb(f, 4<<20))
	lim := Limits{Command: 64 << 10, Ratio: 20, Grace: 16 << 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		z := NewReader(bytes.NewReader(data), lim)
		n, err := io.Copy(io.Discard, z)
		if n > lim.Command {
			t.Fatalf("inflated %d octets, over the command limit %d", n, lim.Command)
		}
		if n > max(lim.Grace, lim.Ratio*int64(len(data)))+1 {
			t.Fatalf("inflated %d octets from %d, over the ratio", n, len(data))
		}
		if err == nil && len(data) > 0 {
			// io.Copy reports io.EOF as nil: the stream was complete.
			ref, rerr := io.ReadAll(flate.NewReader(bytes.NewReader(data)))
			// A stream may stop after a flush: a client hanging up.
			// Which cuts are flushes is the inflater's atFlush, tested
			// with TestHangUp and TestPythonZlibPeer.
			hangUp := rerr == io.ErrUnexpectedEOF
			if (rerr != nil && !hangUp) || int64(len(ref)) != n {
				t.Fatalf("accepted %d octets that flate itself reads as %d, %v", n, len(ref), rerr)
			}
		}
	})
}

// BenchmarkFetchResponse deflates a 100,000-line FETCH answer through
// the Writer behind a bufio.Writer, flushed once at its end, as the
// session will.
func BenchmarkFetchResponse(b *testing.B) {
	var resp bytes.Buffer
	for i := 1; i <= 100000; i++ {
		resp.WriteString("* ")
		resp.WriteString(itoa(i))
		resp.WriteString(" FETCH (UID ")
		resp.WriteString(itoa(4000 + i))
		resp.WriteString(" MODSEQ (")
		resp.WriteString(itoa(90000 + 3*i))
		resp.WriteString(") FLAGS (\\Seen $Junk))\r\n")
	}
	lines := bytes.SplitAfter(resp.Bytes(), []byte("\n"))
	for _, level := range []int{1, DefaultLevel} {
		b.Run("level"+itoa(level), func(b *testing.B) {
			var out countWriter
			zw, _ := NewWriter(&out, level)
			bw := newBufWriter(zw)
			b.SetBytes(int64(resp.Len()))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, l := range lines {
					bw.Write(l)
				}
				bw.Flush()
			}
			b.ReportMetric(float64(resp.Len()*b.N)/float64(out.n), "ratio")
		})
	}
}

type countWriter struct{ n int }

func (w *countWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

func itoa(i int) string { return strconv.Itoa(i) }

func newBufWriter(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, 64<<10) }
