package imap

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// BenchmarkFetchOne: one message's FETCH response through fetchOne from
// a store in a temporary directory, to a discarding writer: FLAGS only
// (index data, the file is never opened: the goal is 0 allocations),
// ENVELOPE (file opened and its header parsed) and BODY[] of a 1 MB
// message (streamed from the file).
func BenchmarkFetchOne(b *testing.B) {
	small := []byte("From: Alice Example <alice@example.com>\r\nTo: Bob <bob@example.org>, carol@example.net\r\n" +
		"Subject: =?UTF-8?B?SGVsbG8gd29ybGQ=?=\r\nDate: Mon, 1 Jan 2024 10:00:00 +0100\r\nMessage-ID: <bench@example.com>\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n")
	big := []byte("From: big@example.com\r\nSubject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", (1<<20)/78))
	f := fetchFolder(b, []corpusMessage{{"small", small}, {"big", big}})
	for _, bc := range []struct {
		name, cmd string
		seq       uint32
	}{
		{"FLAGS", "FETCH 1 (FLAGS)", 1},
		{"UID_FLAGS_MODSEQ", "UID FETCH 1 (FLAGS)", 1},
		{"ENVELOPE", "FETCH 1 (ENVELOPE)", 1},
		{"BODYSTRUCTURE", "FETCH 1 (BODYSTRUCTURE)", 1},
		{"BODY[]_1MB", "FETCH 2 (BODY.PEEK[])", 2},
	} {
		b.Run(bc.name, func(b *testing.B) {
			args := parseFetchCommand(b, bc.cmd)
			enc := wire.NewEncoder(bufio.NewWriterSize(io.Discard, 64<<10))
			m := f.Messages()[bc.seq-1]
			ctx := context.Background()
			b.SetBytes(m.Size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := fetchOne(ctx, enc, f, bc.seq, m, args, nil, args.UID, false); err != nil {
					b.Fatal(err)
				}
			}
			if err := enc.Flush(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
