package delivery

import (
	"errors"
)

// prefixedMessage is a message with header fields put on top, read
// without copying the message.
type prefixedMessage struct {
	head []byte
	msg  Message
}

func prefixed(head []byte, msg Message) Message { return prefixedMessage{head, msg} }

func (p prefixedMessage) Size() int64 { return int64(len(p.head)) + p.msg.Size() }

func (p prefixedMessage) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("delivery: negative offset")
	}
	n := 0
	if off < int64(len(p.head)) {
		n = copy(b, p.head[off:])
		if n == len(b) {
			return n, nil
		}
	}
	m, err := p.msg.ReadAt(b[n:], max(off+int64(n)-int64(len(p.head)), 0))
	return n + m, err
}
