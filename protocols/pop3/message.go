package pop3

import (
	"bytes"
	"errors"
	"io"

	"github.com/vmaild/vmaild/backend/store"
)

// Size returns the octets RETR sends for the content of r before
// dot-stuffing: every line ending becomes CRLF and a last line without one
// gets one. It is the store's VirtualSize (Dovecot's ,W=), the very
// normaliser transfer sends messages through, so a size the store wrote
// into a file name or its index is what RETR sends.
func Size(r io.Reader) (int64, error) {
	return store.VirtualSize(r)
}

// transfer copies a message from r to w in its CRLF form (store.CopyCRLF:
// bare LF becomes CRLF, the last line is ended) and, if stuff is set,
// doubles a leading "." on every line. bodyLines >= 0 stops after the
// header, the blank line and that many body lines (TOP). Bytes other than
// line endings pass unchanged, 8-bit included. It returns the number of
// octets of the normalised message, not counting stuffing, so callers can
// compare it with Message.Size.
//
// Lines of any length are handled in pieces without being buffered whole.
func transfer(w io.Writer, r io.Reader, stuff bool, bodyLines int) (int64, error) {
	d := &dotWriter{w: w, stuff: stuff, bodyLines: bodyLines, inHeader: true}
	_, err := store.CopyCRLF(d, r)
	if errors.Is(err, errTopDone) {
		err = nil
	}
	return d.n, err
}

// errTopDone stops the copy once TOP has sent what was asked.
var errTopDone = errors.New("top: enough lines sent")

// dotWriter takes a message in CRLF form, dot-stuffs it on its way to w
// and counts lines for TOP.
type dotWriter struct {
	w         io.Writer
	stuff     bool
	bodyLines int   // < 0: the whole message
	n         int64 // octets passed, stuffing not counted
	lineLen   int   // octets of the current line so far, CRLF included
	inHeader  bool
	sent      int // body lines sent
}

func (d *dotWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if d.lineLen == 0 && d.stuff && p[0] == '.' {
			if _, err := d.w.Write(dot); err != nil {
				return 0, err
			}
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if _, err := d.w.Write(p); err != nil {
				return 0, err
			}
			d.n += int64(len(p))
			d.lineLen += len(p)
			return total, nil
		}
		if _, err := d.w.Write(p[:i+1]); err != nil {
			return 0, err
		}
		d.n += int64(i + 1)
		lineLen := d.lineLen + i + 1
		d.lineLen = 0
		p = p[i+1:]
		if d.bodyLines < 0 {
			continue
		}
		if d.inHeader {
			// In CRLF form the blank line is exactly "\r\n".
			if lineLen == 2 {
				d.inHeader = false
				if d.bodyLines == 0 {
					return total, errTopDone
				}
			}
		} else if d.sent++; d.sent >= d.bodyLines {
			return total, errTopDone
		}
	}
	return total, nil
}

var dot = []byte(".")
