package pop3

import (
	"bufio"
	"io"
)

// Size returns the octets RETR sends for the content of r before
// dot-stuffing: every line ending becomes CRLF and a last line without one
// gets one, exactly as the server normalises on the way out. Stores call it
// once per message (at delivery, say) and keep the result.
func Size(r io.Reader) (int64, error) {
	return transfer(io.Discard, r, false, -1)
}

// transfer copies a message from r to w, turning bare LF into CRLF (stores
// may keep LF-only files), ending the last line with CRLF and, if stuff is
// set, doubling a leading "." on every line. bodyLines >= 0 stops after the
// header, the blank line and that many body lines (TOP). Bytes other than
// line endings pass unchanged, 8-bit included. It returns the number of
// octets of the normalised message, not counting stuffing, so callers can
// compare it with Message.Size.
//
// Lines of any length are handled in pieces without being buffered whole.
func transfer(w io.Writer, r io.Reader, stuff bool, bodyLines int) (int64, error) {
	br := bufio.NewReaderSize(r, 32*1024)
	var (
		n         int64
		lineStart = true // nothing of the current line written yet
		lineLen   int    // octets of the current line's content so far
		pendingCR bool   // a CR ended the previous piece: is it the CRLF's?
		inHeader  = true
		sent      int // body lines sent
	)
	write := func(p []byte) error {
		n += int64(len(p))
		_, err := w.Write(p)
		return err
	}
	for {
		piece, rerr := br.ReadSlice('\n')
		if len(piece) > 0 {
			if lineStart {
				lineLen = 0
				if stuff && piece[0] == '.' {
					if _, err := w.Write(dot); err != nil {
						return n, err
					}
				}
			}
			full := piece[len(piece)-1] == '\n'
			content := piece
			if full {
				content = piece[:len(piece)-1]
			}
			if pendingCR {
				pendingCR = false
				if !full || len(content) > 0 {
					// The CR was not followed by LF: it is data.
					if err := write(cr); err != nil {
						return n, err
					}
					lineLen++
				}
			}
			if full {
				if len(content) > 0 && content[len(content)-1] == '\r' {
					content = content[:len(content)-1]
				}
				if err := write(content); err != nil {
					return n, err
				}
				if err := write(crlf); err != nil {
					return n, err
				}
				lineLen += len(content)
				lineStart = true
				if bodyLines >= 0 {
					if inHeader {
						if lineLen == 0 {
							inHeader = false
							if bodyLines == 0 {
								return n, nil
							}
						}
					} else if sent++; sent >= bodyLines {
						return n, nil
					}
				}
			} else {
				if len(content) > 0 && content[len(content)-1] == '\r' {
					content = content[:len(content)-1]
					pendingCR = true
				}
				if err := write(content); err != nil {
					return n, err
				}
				lineLen += len(content)
				lineStart = false
			}
		}
		switch rerr {
		case nil, bufio.ErrBufferFull:
		case io.EOF:
			if pendingCR {
				if err := write(cr); err != nil {
					return n, err
				}
			}
			if !lineStart {
				if err := write(crlf); err != nil {
					return n, err
				}
			}
			return n, nil
		default:
			return n, rerr
		}
	}
}

var (
	dot  = []byte(".")
	cr   = []byte("\r")
	crlf = []byte("\r\n")
)
