package imap

import (
	"bufio"
	"errors"
	"io"
)

// Streaming decoders for BINARY (RFC 3516), as strict and as lenient as
// Dovecot's: base64 skips white space and line breaks anywhere, and
// refuses other characters, an unfinished quad at the end and anything
// after the padding; quoted-printable drops trailing white space, takes "=" at the
// end of a line (after white space too) as a soft break, refuses an "="
// without two hex digits, and ends hard line breaks with CRLF.

// errBadEncoding: the data is not in its transfer encoding (a base64
// body with other characters), answered NO [PARSE].
var errBadEncoding = errors.New("invalid data in MIME part")

type base64Decoder struct {
	br    *bufio.Reader
	quad  [4]byte
	n     int
	out   [3]byte
	avail []byte
	done  bool
	pad   int // "=" seen after the last quad
}

func newBase64Decoder(r io.Reader) *base64Decoder {
	return &base64Decoder{br: bufio.NewReaderSize(r, 4096)}
}

func b64Value(c byte) (byte, bool) {
	switch {
	case c >= 'A' && c <= 'Z':
		return c - 'A', true
	case c >= 'a' && c <= 'z':
		return c - 'a' + 26, true
	case c >= '0' && c <= '9':
		return c - '0' + 52, true
	case c == '+':
		return 62, true
	case c == '/':
		return 63, true
	}
	return 0, false
}

func (d *base64Decoder) Read(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		if len(d.avail) > 0 {
			n := copy(p[written:], d.avail)
			d.avail = d.avail[n:]
			written += n
			continue
		}
		if d.done {
			break
		}
		c, err := d.br.ReadByte()
		if err == io.EOF {
			if d.n != 0 && d.pad == 0 {
				return written, errBadEncoding // an unfinished quad
			}
			if d.pad > 0 && d.n+d.pad != 4 {
				return written, errBadEncoding
			}
			d.done = true
			continue
		}
		if err != nil {
			return written, err
		}
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			continue
		case c == '=':
			// Padding ends a quad of two or three sextets.
			if d.n < 2 || d.n+d.pad >= 4 {
				return written, errBadEncoding
			}
			if d.pad == 0 {
				d.flush(d.n)
				d.n = 2 // remember the quad's length for the check
				if len(d.avail) == 2 {
					d.n = 3
				}
			}
			d.pad++
			continue
		}
		if d.pad > 0 {
			return written, errBadEncoding // data after the padding
		}
		v, ok := b64Value(c)
		if !ok {
			return written, errBadEncoding
		}
		d.quad[d.n] = v
		d.n++
		if d.n == 4 {
			d.flush(4)
		}
	}
	if written == 0 && d.done && len(d.avail) == 0 {
		return 0, io.EOF
	}
	return written, nil
}

// flush turns the n sextets held into octets.
func (d *base64Decoder) flush(n int) {
	q := d.quad
	d.out[0] = q[0]<<2 | q[1]>>4
	d.out[1] = q[1]<<4 | q[2]>>2
	d.out[2] = q[2]<<6 | q[3]
	switch n {
	case 4:
		d.avail = d.out[:3]
	case 3:
		d.avail = d.out[:2]
	case 2:
		d.avail = d.out[:1]
	default:
		d.avail = nil
	}
	d.quad, d.n = [4]byte{}, 0
}

type qpDecoder struct {
	br    *bufio.Reader
	line  []byte
	out   []byte
	avail []byte
	eof   bool
}

func newQPDecoder(r io.Reader) *qpDecoder {
	return &qpDecoder{br: bufio.NewReaderSize(r, 4096)}
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func (d *qpDecoder) Read(p []byte) (int, error) {
	for len(d.avail) == 0 {
		if d.eof {
			return 0, io.EOF
		}
		if err := d.decodeLine(); err != nil {
			return 0, err
		}
	}
	n := copy(p, d.avail)
	d.avail = d.avail[n:]
	return n, nil
}

// decodeLine decodes the next line (long lines in pieces: a piece never
// ends inside an escape, since it is cut after at most 4096 octets and
// an escape is handled with what follows).
func (d *qpDecoder) decodeLine() error {
	line, err := d.br.ReadSlice('\n')
	partial := errors.Is(err, bufio.ErrBufferFull)
	if err != nil && !partial && err != io.EOF {
		return err
	}
	if err == io.EOF {
		d.eof = true
	}
	d.line = append(d.line[:0], line...)
	if partial {
		// Keep escapes whole: read up to two more octets after a
		// trailing "=" or "=X".
		for i := 0; i < 2 && len(d.line) > 0; i++ {
			if k := len(d.line); d.line[k-1] == '=' || (k >= 2 && d.line[k-2] == '=') {
				c, err := d.br.ReadByte()
				if err != nil {
					break
				}
				d.line = append(d.line, c)
			}
		}
	}
	b := d.line
	hard := false
	if !partial {
		if n := len(b); n > 0 && b[n-1] == '\n' {
			b, hard = b[:n-1], true
			if n := len(b); n > 0 && b[n-1] == '\r' {
				b = b[:n-1]
			}
		}
		// Trailing white space is not content.
		for n := len(b); n > 0 && (b[n-1] == ' ' || b[n-1] == '\t'); n = len(b) {
			b = b[:n-1]
		}
	}
	out := d.out[:0]
	soft := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		if i == len(b)-1 && !partial {
			soft = true
			break
		}
		if i+2 < len(b) {
			h, ok1 := unhex(b[i+1])
			l, ok2 := unhex(b[i+2])
			if ok1 && ok2 {
				out = append(out, h<<4|l)
				i += 2
				continue
			}
		}
		if !partial || i+2 < len(b) {
			return errBadEncoding
		}
		out = append(out, c)
	}
	if soft && !hard && d.eof {
		// A soft break needs a line after it (Dovecot: "invalid
		// quoted-printable input trailer").
		return errBadEncoding
	}
	if hard && !soft {
		out = append(out, '\r', '\n')
	}
	d.out = out
	d.avail = out
	return nil
}
