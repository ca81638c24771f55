package bridge

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"unicode/utf8"
)

// readLine reads one LF-terminated line of at most max octets (without
// the LF; a CR before it is kept out too). A longer line, a NUL or a line
// that is not UTF-8 ends the connection: a line protocol cannot resync.
func readLine(c *Conn, max int) (string, error) {
	var line []byte
	for {
		chunk, err := c.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > max+1 {
			return "", hangUp("line longer than %d octets", max)
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF) && len(line) > 0:
			return "", hangUp("connection closed in the middle of a line")
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return "", err
		}
		break
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte{'\n'}), []byte{'\r'})
	if bytes.IndexByte(line, 0) >= 0 {
		return "", hangUp("NUL in a line")
	}
	if !utf8.Valid(line) {
		return "", hangUp("line not UTF-8")
	}
	return string(line), nil
}
