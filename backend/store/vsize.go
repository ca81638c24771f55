package store

import (
	"bytes"
	"io"
	"strconv"
	"strings"
)

// A message's virtual size (Dovecot's name, the ",W=<size>" of a maildir
// file name) is its size with every line ending in CRLF and a CRLF after a
// last line that lacks one: what POP3 sends before dot-stuffing. Files keep
// whatever line endings their writer used (LF from most MTAs), so the
// virtual size is known without reading a message only when its name or
// the index says it. CRLFWriter is the one place that decides it: the
// store counts with it when it writes a message, and the POP3 server sends
// every message through it.

// CRLFWriter passes a message to W with its line endings made CRLF: a bare
// LF becomes CRLF, a CR not followed by LF is content and stays, other
// bytes pass unchanged. Close ends a last line that has no line ending.
// N counts the octets written to W.
type CRLFWriter struct {
	W io.Writer
	N int64

	pendingCR bool // the last byte seen was CR: is it the CRLF's?
	open      bool // the output does not end with a line ending
}

var crlf = []byte("\r\n")

// Write passes p on, normalised. Already-CRLF runs are written in one
// piece, so a CRLF message costs one write per call.
func (c *CRLFWriter) Write(p []byte) (int, error) {
	n := len(p)
	if n == 0 {
		return 0, nil
	}
	if c.pendingCR {
		c.pendingCR = false
		if p[0] == '\n' {
			p = p[1:]
			if err := c.out(crlf); err != nil {
				return 0, err
			}
		} else if err := c.out([]byte{'\r'}); err != nil {
			return 0, err
		}
	}
	start := 0
	for i := 0; i < len(p); {
		j := bytes.IndexByte(p[i:], '\n')
		if j < 0 {
			break
		}
		j += i
		if j == 0 || p[j-1] != '\r' {
			// A bare LF: write the run up to it, then CRLF.
			if err := c.out(p[start:j]); err != nil {
				return 0, err
			}
			if err := c.out(crlf); err != nil {
				return 0, err
			}
			start = j + 1
		}
		i = j + 1
	}
	rest := p[start:]
	if len(rest) > 0 && rest[len(rest)-1] == '\r' {
		// It may be the CR of a CRLF split across writes.
		rest, c.pendingCR = rest[:len(rest)-1], true
	}
	if len(rest) > 0 {
		if err := c.out(rest); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// Close writes what a message without a final line ending lacks: a
// pending CR (content, as nothing follows it) and the last CRLF. It does
// not close W.
func (c *CRLFWriter) Close() error {
	if c.pendingCR {
		c.pendingCR = false
		if err := c.out([]byte{'\r'}); err != nil {
			return err
		}
	}
	if c.open {
		return c.out(crlf)
	}
	return nil
}

func (c *CRLFWriter) out(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	n, err := c.W.Write(p)
	c.N += int64(n)
	c.open = p[len(p)-1] != '\n'
	return err
}

// CopyCRLF copies the message r to w through a CRLFWriter and returns the
// octets written.
func CopyCRLF(w io.Writer, r io.Reader) (int64, error) {
	c := &CRLFWriter{W: w}
	// A plain read loop: io.Copy would let a reader with WriteTo hand
	// over its whole content in one piece, a copy of it for a
	// strings.Reader.
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return c.N, werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return c.N, err
		}
	}
	err := c.Close()
	return c.N, err
}

// VirtualSize reads the message r and returns its virtual size: the
// octets of its CRLF form, which is what a POP3 RETR sends before
// dot-stuffing.
func VirtualSize(r io.Reader) (int64, error) {
	return CopyCRLF(io.Discard, r)
}

// vsizeFromName reads the ",W=<octets>" field Dovecot (and vmaild) put in
// a base name.
func vsizeFromName(base string) (int64, bool) {
	return fieldFromName(base, ",W=")
}

// withVSize adds ",W=<vsize>" to a base name from uniqueBase.
func withVSize(base string, vsize int64) string {
	if vsize < 0 {
		return base
	}
	return base + ",W=" + strconv.FormatInt(vsize, 10)
}

// fieldFromName reads a ",X=<decimal>" field of a base name.
func fieldFromName(base, field string) (int64, bool) {
	i := strings.Index(base, field)
	if i < 0 {
		return 0, false
	}
	v := base[i+len(field):]
	if j := strings.IndexAny(v, ",:"); j >= 0 {
		v = v[:j]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
