package smtp

import (
	"errors"
	"io"
	"os"
	"sync"
)

var (
	errBareNewline = errors.New("smtp: bare CR or LF in message")
	errSpoolFull   = errors.New("smtp: message larger than the limit")
)

// spool holds one message while it is delivered: in memory up to memMax
// bytes, then in a temporary file that is unlinked as soon as it is created,
// so a crash leaves nothing behind. Writing checks that every line ends in
// CRLF (see the package comment on smuggling).
type spool struct {
	limit  int64
	memMax int
	dir    string

	buf  []byte
	file *os.File
	size int64
	cr   bool // the last byte written was CR
	bad  bool // a bare CR or LF was seen
}

var spoolBufs = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

func newSpool(limit int64, memMax int, dir string) *spool {
	bp := spoolBufs.Get().(*[]byte)
	return &spool{limit: limit, memMax: memMax, dir: dir, buf: (*bp)[:0]}
}

func (s *spool) Write(p []byte) (int, error) {
	if s.size+int64(len(p)) > s.limit {
		return 0, errSpoolFull
	}
	s.checkNewlines(p)
	if s.bad {
		return 0, errBareNewline
	}
	if s.file == nil && len(s.buf)+len(p) > s.memMax {
		f, err := os.CreateTemp(s.dir, "vmaild-smtp-*")
		if err != nil {
			return 0, err
		}
		os.Remove(f.Name())
		s.file = f
		if _, err := f.Write(s.buf); err != nil {
			return 0, err
		}
	}
	if s.file != nil {
		n, err := s.file.Write(p)
		s.size += int64(n)
		return n, err
	}
	s.buf = append(s.buf, p...)
	s.size += int64(len(p))
	return len(p), nil
}

// checkNewlines finds a LF not preceded by CR or a CR not followed by LF.
func (s *spool) checkNewlines(p []byte) {
	cr := s.cr
	for _, c := range p {
		switch {
		case c == '\n':
			if !cr {
				s.bad = true
				return
			}
			cr = false
		case cr:
			s.bad = true
			return
		case c == '\r':
			cr = true
		}
	}
	s.cr = cr
}

// finish reports a message that ends in a bare CR.
func (s *spool) finish() error {
	if s.bad || s.cr {
		return errBareNewline
	}
	return nil
}

func (s *spool) Size() int64 { return s.size }

func (s *spool) ReadAt(p []byte, off int64) (int, error) {
	if s.file != nil {
		return s.file.ReadAt(p, off)
	}
	if off >= int64(len(s.buf)) {
		return 0, io.EOF
	}
	n := copy(p, s.buf[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Close releases the spool; it must not be read afterwards.
func (s *spool) Close() error {
	var err error
	if s.file != nil {
		err = s.file.Close()
		s.file = nil
	}
	if cap(s.buf) <= 1<<20 {
		b := s.buf[:0]
		spoolBufs.Put(&b)
	}
	s.buf = nil
	return err
}

// message is what the agent reads: header lines this server adds, then the
// spooled message from off (past header fields removed), without copying
// either.
type message struct {
	head []byte
	body *spool
	off  int64
}

func (m *message) Size() int64 { return int64(len(m.head)) + m.body.Size() - m.off }

func (m *message) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	if off < int64(len(m.head)) {
		n = copy(p, m.head[off:])
		if n == len(p) {
			return n, nil
		}
		off = int64(len(m.head))
	}
	k, err := m.body.ReadAt(p[n:], off-int64(len(m.head))+m.off)
	return n + k, err
}
