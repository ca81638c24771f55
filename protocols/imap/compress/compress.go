// Package compress is IMAP's COMPRESS=DEFLATE (RFC 4978): once the server
// has answered "OK" to "COMPRESS DEFLATE", both directions of the
// connection carry one raw DEFLATE stream each (RFC 1951, no zlib header
// or checksum), for as long as the connection lasts.
//
// The session swaps its halves with wire.Reader.Reset and
// wire.Encoder.Reset (after checking with Buffered that the client
// pipelined nothing behind COMPRESS, which would be uncompressed data):
//
//	zr := compress.NewReader(conn, compress.Limits{})
//	zw, _ := compress.NewWriter(conn, compress.DefaultLevel)
//	r.Reset(bufio.NewReader(zr))
//	enc.Reset(bufio.NewWriterSize(zw, 64<<10))
//	// before each command: zr.Next()
//
// The Writer ends every Write with a sync flush (zlib's Z_SYNC_FLUSH), so
// the client can inflate everything it was sent: behind a bufio.Writer,
// the session's one flush per command is one sync flush, and a response
// never waits in the compressor.
//
// The Reader inflates with its own decoder (inflate.go), which hands a
// command over as soon as its symbols arrived, whatever flush the client
// ended it with: sync (Thunderbird), full, or zlib's partial flush
// (isync's mbsync), after which compress/flate would wait for the next
// block.
//
// The Writer is the costly half: flate's compressor holds some 800 KB
// (level 6; 1.2 MB at level 1) for the connection's life, the Reader
// some 50 KB (its window, tables and input buffer). A server that fears many idle compressed sessions should
// count them.
//
// The Reader is bounded, because a few octets of DEFLATE can stand for a
// thousand times as many (a deflate bomb): Limits caps the octets one
// command may inflate to and the ratio of inflated to compressed octets
// over the connection. Past either, Read returns a *LimitError for ever;
// the session answers BYE and closes.
package compress

import (
	"bufio"
	"compress/flate"
	"errors"
	"fmt"
	"io"
)

// DefaultLevel is the compression level Dovecot uses by default
// (imap_compress_deflate_level = 6).
const DefaultLevel = 6

// Limits bound what a client's compressed stream may inflate to. Zero
// fields take the defaults in brackets.
type Limits struct {
	// Command caps the octets inflated between two calls of Next, that
	// is, for one command [65 MiB: the wire Reader's 64 MiB APPEND
	// message and 1 MiB of command text]. A MULTIAPPEND session may
	// call Next between messages.
	Command int64
	// Ratio caps inflated octets per compressed octet over the whole
	// connection [100], once more than Grace octets were inflated
	// [1 MiB]. Text compresses 3 to 10 times; a stream of zeros 1,000
	// times.
	Ratio int64
	Grace int64
}

func (l Limits) withDefaults() Limits {
	if l.Command <= 0 {
		l.Command = 65 << 20
	}
	if l.Ratio <= 0 {
		l.Ratio = 100
	}
	if l.Grace <= 0 {
		l.Grace = 1 << 20
	}
	return l
}

// ErrLimit is matched (errors.Is) by every *LimitError.
var ErrLimit = errors.New("compress: inflate limit exceeded")

// LimitError says which bound the client's stream broke.
type LimitError struct {
	Inflated   int64 // octets inflated over the connection
	Compressed int64 // compressed octets read over the connection
	Reason     string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("compress: %s (%d octets inflated from %d)", e.Reason, e.Inflated, e.Compressed)
}

// Is makes errors.Is(err, ErrLimit) hold.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// counter counts the compressed octets the inflater reads, for the
// ratio.
type counter struct {
	br *bufio.Reader
	n  int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.br.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *counter) ReadByte() (byte, error) {
	b, err := c.br.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// Reader inflates a client's stream within Limits.
type Reader struct {
	src      counter
	fr       *inflater
	lim      Limits
	inflated int64 // over the connection
	command  int64 // since Next
	err      error
}

// NewReader returns a Reader inflating what it reads from r.
func NewReader(r io.Reader, lim Limits) *Reader {
	z := &Reader{lim: lim.withDefaults()}
	z.src.br = bufio.NewReaderSize(r, 4096)
	z.fr = newInflater(&z.src)
	return z
}

// Next starts a new command's budget of Limits.Command octets.
func (z *Reader) Next() { z.command = 0 }

// Read inflates into p. It never inflates past the command's budget, nor
// more than one octet past the ratio: a bomb costs what the limits allow,
// not the size it claims.
func (z *Reader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	left := z.lim.Command - z.command
	if left <= 0 {
		z.err = z.limit(fmt.Sprintf("command over %d inflated octets", z.lim.Command))
		return 0, z.err
	}
	// Within the ratio, as far as the compressed octets read so far
	// tell, plus one octet: either the read brings more compressed
	// octets, or that octet breaks the ratio.
	if ratioLeft := max(z.lim.Grace, z.lim.Ratio*z.src.n) - z.inflated + 1; ratioLeft < left {
		left = ratioLeft
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := z.fr.Read(p)
	z.inflated += int64(n)
	z.command += int64(n)
	if z.inflated > z.lim.Grace && z.inflated > z.lim.Ratio*z.src.n {
		z.err = z.limit(fmt.Sprintf("expansion over %d:1", z.lim.Ratio))
		return n, z.err
	}
	if err != nil {
		if err == io.ErrUnexpectedEOF && z.fr.atFlush() {
			// The client hung up before sending anything or after a
			// whole flush (sync, full or partial): RFC 4978's stream
			// has no end of its own.
			err = io.EOF
		} else if err != io.EOF {
			err = fmt.Errorf("compress: inflate: %w", err)
		}
		z.err = err
	}
	return n, err
}

func (z *Reader) limit(reason string) error {
	return &LimitError{Inflated: z.inflated, Compressed: z.src.n, Reason: reason}
}

// Writer deflates what the server sends.
type Writer struct {
	fw *flate.Writer
	bw *bufio.Writer // gathers flate's small writes into a few
}

// NewWriter returns a Writer deflating into w at level (flate's levels,
// 1 to 9; DefaultLevel as Dovecot).
func NewWriter(w io.Writer, level int) (*Writer, error) {
	bw := bufio.NewWriterSize(w, 16<<10)
	fw, err := flate.NewWriter(bw, level)
	if err != nil {
		return nil, fmt.Errorf("compress: level %d: %w", level, err)
	}
	return &Writer{fw: fw, bw: bw}, nil
}

// Write deflates p and sync-flushes it to the connection, so that the
// client can inflate all of p at once.
func (z *Writer) Write(p []byte) (int, error) {
	n, err := z.fw.Write(p)
	if err != nil {
		return n, fmt.Errorf("compress: deflate: %w", err)
	}
	if err := z.fw.Flush(); err != nil {
		return n, fmt.Errorf("compress: flush: %w", err)
	}
	if err := z.bw.Flush(); err != nil {
		return n, fmt.Errorf("compress: write: %w", err)
	}
	return n, nil
}
