package wire

import (
	"bufio"
	"io"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// loopReader repeats one command line for ever.
type loopReader struct {
	line []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.line[l.off:])
		n += c
		l.off = (l.off + c) % len(l.line)
	}
	return n, nil
}

func benchParse(b *testing.B, line string) {
	r := NewReader(bufio.NewReader(&loopReader{line: []byte(line)}), Limits{}, nil)
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.ReadCommand(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseFetch(b *testing.B) {
	benchParse(b, "a12 FETCH 1:50 (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (From To Cc Subject Date Message-ID)])\r\n")
}

func BenchmarkParseUIDFetch(b *testing.B) {
	benchParse(b, "a12 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)\r\n")
}

func BenchmarkParseSearch(b *testing.B) {
	benchParse(b, "a12 UID SEARCH RETURN (ALL COUNT) CHARSET UTF-8 UNDELETED SINCE 1-Jan-2024 OR FROM alice SUBJECT \"quarterly report\"\r\n")
}

// BenchmarkEncodeFetchFlags100k encodes the answer to UID FETCH 1:*
// (FLAGS) on a 100,000-message folder: one op is the whole answer.
func BenchmarkEncodeFetchFlags100k(b *testing.B) {
	flags := [][]imap.Flag{{imap.FlagSeen}, {imap.FlagSeen, imap.FlagAnswered}, {}, {imap.FlagSeen, "$Junk"}}
	bw := bufio.NewWriterSize(io.Discard, 64<<10)
	enc := NewEncoder(bw)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for seq := uint32(1); seq <= 100000; seq++ {
			w := enc.Fetch(seq)
			w.UID(imap.UID(seq + 1000))
			w.Flags(flags[seq%4])
			w.End()
		}
		enc.Status("a12", imap.StatusResponseTypeOK, "", "Fetch completed")
		if err := enc.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}
