package imap

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// The MIME tree of a message, as Dovecot's message parser builds it, so
// that section numbers, sizes and line counts answer as Dovecot's do:
//
//   - a header ends at its empty line, or at the end of the data, or at a
//     boundary line of an enclosing multipart; lines without a colon do
//     not end it;
//   - a boundary line is "--" and the boundary at the start of a line,
//     whatever follows; the innermost multipart's boundary is tried
//     first, an enclosing one ends every part inside it;
//   - the line break before a boundary line belongs to the boundary;
//   - a multipart without a boundary parameter has no parts, a
//     multipart/digest's parts are message/rfc822 unless they say
//     otherwise, and a message/rfc822 part holds one message;
//   - nesting stops at maxMIMEDepth levels and maxMIMEParts parts
//     (Dovecot's limits): a multipart or message/rfc822 there is a leaf,
//     of type application/octet-stream.
//
// The parser reads the message once, through a bufio.Reader, keeping
// only the header fields BODYSTRUCTURE and ENVELOPE need (each cut at
// maxFieldKept), never a body.
const (
	maxMIMEDepth = 100
	maxMIMEParts = 10000
	maxFieldKept = 1 << 20
	maxLineKept  = maxFieldKept + 1024
)

// mimePart is one node of the tree. Offsets are in the message file.
type mimePart struct {
	off        int64 // start of the header
	headerSize int64 // header with its empty line
	bodySize   int64
	lines      int64 // LFs in the body
	h          partHeader
	multipart  bool
	message    bool // message/rfc822: children[0] is the message
	// headerCut: a boundary line ended the header, which then keeps
	// its last line break.
	headerCut bool
	// truncated: a multipart or message/rfc822 the limits left
	// unparsed, answered as application/octet-stream as Dovecot does.
	truncated bool
	// fieldsEnd is where the header's fields end: before its empty
	// line, or at its end when it has none.
	fieldsEnd int64
	children  []*mimePart
}

func (p *mimePart) bodyOff() int64 { return p.off + p.headerSize }
func (p *mimePart) end() int64     { return p.off + p.headerSize + p.bodySize }

// partHeader holds the raw values (unfolded, trimmed) of the header
// fields that describe a part, and for a message the envelope's.
type partHeader struct {
	fields []headerField
}

type headerField struct {
	name     string // lower-case
	value    string
	off, end int64 // the field's lines in the file
}

// wantedField reports whether a header field is kept.
func wantedField(lower []byte) bool {
	if bytes.HasPrefix(lower, []byte("content-")) {
		switch string(lower[len("content-"):]) {
		case "type", "transfer-encoding", "id", "description", "disposition", "language", "location", "md5":
			return true
		}
		return false
	}
	switch string(lower) {
	case "date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc", "in-reply-to", "message-id":
		return true
	}
	return false
}

// first returns the first value of field name, as the parser takes
// Content-Type.
func (h *partHeader) first(name string) (string, bool) {
	if f := h.firstField(name); f != nil {
		return f.value, true
	}
	return "", false
}

func (h *partHeader) firstField(name string) *headerField {
	for i := range h.fields {
		if h.fields[i].name == name {
			return &h.fields[i]
		}
	}
	return nil
}

// last returns the last value of field name, as Dovecot's envelope and
// body structure take them.
func (h *partHeader) last(name string) (string, bool) {
	for i := len(h.fields) - 1; i >= 0; i-- {
		if h.fields[i].name == name {
			return h.fields[i].value, true
		}
	}
	return "", false
}

// lineReader reads lines and counts offsets and LFs.
type lineReader struct {
	br    *bufio.Reader
	pos   int64 // offset of the next unread byte
	lfs   int64 // LFs consumed
	err   error
	line  []byte // the current line, cut at keep octets
	keep  int
	start int64 // its offset
	size  int64 // its full length
	term  int   // its line break: 0 (end of data), 1 (LF), 2 (CRLF)
	// prevTerm is the line break of the line before the current one.
	prevTerm int
	peeked   bool
}

// next makes the following line current; false at the end of the data.
func (l *lineReader) next() bool {
	if l.peeked {
		l.peeked = false
		return true
	}
	if l.err != nil {
		return false
	}
	l.prevTerm = l.term
	l.line = l.line[:0]
	l.start, l.size, l.term = l.pos, 0, 0
	var last2 [2]byte
	for {
		seg, err := l.br.ReadSlice('\n')
		l.size += int64(len(seg))
		if len(l.line) < l.keep {
			l.line = append(l.line, seg[:min(len(seg), l.keep-len(l.line))]...)
		}
		if n := len(seg); n >= 2 {
			last2 = [2]byte{seg[n-2], seg[n-1]}
		} else if n == 1 {
			last2 = [2]byte{last2[1], seg[0]}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			l.err = err
		}
		break
	}
	l.pos += l.size
	if l.size > 0 && last2[1] == '\n' {
		l.lfs++
		l.term = 1
		if l.size >= 2 && last2[0] == '\r' {
			l.term = 2
		}
	}
	if l.size == 0 {
		l.term = l.prevTerm
		return false
	}
	return true
}

// unread keeps the current line for the next call of next.
func (l *lineReader) unread() { l.peeked = true }

// content is the current line without its line break.
func (l *lineReader) content() []byte {
	b := l.line
	if int64(len(b)) == l.size {
		b = b[:len(b)-l.term]
	}
	return b
}

type mimeParser struct {
	lr     lineReader
	bounds []string // active boundaries, outermost first
	// bodyKeep is what a body line must keep to be matched against the
	// boundaries.
	bodyKeep int
	parts    int
	// boundaryEnd is where the last boundary line consumed ends: its
	// line break is its own, never the one before a following boundary.
	boundaryEnd int64
	// noTrimAt is a boundary line whose line break before it stays in
	// the parts that end there.
	noTrimAt int64
}

// parseMIME reads the tree of the size octets of r.
func parseMIME(r io.Reader) *mimePart {
	p := newMIMEParser(r)
	root := &mimePart{}
	p.part(root, false, 0)
	return root
}

func newMIMEParser(r io.Reader) *mimeParser {
	return &mimeParser{lr: lineReader{br: bufio.NewReaderSize(r, 4096)}, bodyKeep: 2, noTrimAt: -1}
}

// parseHeader reads only the message's header, which is all ENVELOPE
// needs.
func parseHeader(r io.Reader) *partHeader {
	var mp mimePart
	newMIMEParser(r).header(&mp)
	return &mp.h
}

// boundary returns the index of the active boundary the current line
// is, and whether it closes its multipart; -1 if none. As Dovecot's
// parser: the line must start with "--" and the boundary; of several
// such, the longest wins, then the innermost.
func (p *mimeParser) boundary() (int, bool) {
	line := p.lr.line
	if len(p.bounds) == 0 || len(line) < 2 || line[0] != '-' || line[1] != '-' {
		return -1, false
	}
	rest := line[2:]
	best := -1
	for i := len(p.bounds) - 1; i >= 0; i-- {
		b := p.bounds[i]
		if len(rest) >= len(b) && string(rest[:len(b)]) == b && (best < 0 || len(b) > len(p.bounds[best])) {
			best = i
		}
	}
	if best < 0 {
		return -1, false
	}
	after := rest[len(p.bounds[best]):]
	return best, len(after) >= 2 && after[0] == '-' && after[1] == '-'
}

// part parses one part from the current position up to a boundary
// line of an enclosing multipart (left unread) or the end of the data.
func (p *mimeParser) part(mp *mimePart, digestChild bool, depth int) {
	p.parts++
	mp.off = p.lr.pos
	if p.lr.peeked {
		mp.off = p.lr.start
	}
	mp.fieldsEnd = -1
	p.header(mp)
	mp.headerSize = p.lr.pos - mp.off
	if p.lr.peeked {
		mp.headerSize = p.lr.start - mp.off
	}
	if mp.fieldsEnd < 0 {
		mp.fieldsEnd = mp.off + mp.headerSize
	}
	bodyStart := mp.off + mp.headerSize

	typ, sub, params, present := contentType(&mp.h)
	if !present && digestChild {
		typ, sub = "message", "rfc822"
	}
	deeper := depth+1 < maxMIMEDepth && p.parts < maxMIMEParts
	switch {
	case !deeper && (eqFold(typ, "multipart") || eqFold(typ, "message") && eqFold(sub, "rfc822")):
		mp.truncated = true
		p.leafBody(mp, bodyStart)
	case eqFold(typ, "multipart"):
		mp.multipart = true
		b, ok := paramValue(params, "boundary")
		if !ok {
			// Without a boundary there are no parts; an empty one
			// is a boundary, as Dovecot takes it.
			p.leafBody(mp, bodyStart)
			return
		}
		p.bounds = append(p.bounds, b)
		own := len(p.bounds) - 1
		saved := p.bodyKeep
		p.bodyKeep = max(p.bodyKeep, len(b)+4)
		p.lr.keep = p.bodyKeep
		lf0 := p.lr.lfs
		digest := eqFold(sub, "digest")
		closed := false
		for p.lr.next() {
			i, isClose := p.boundary()
			if i < 0 || (closed && i == own) {
				continue
			}
			if i != own {
				p.lr.unread()
				break
			}
			p.boundaryEnd = p.lr.pos
			if isClose {
				closed = true
				continue
			}
			for !closed {
				child := &mimePart{}
				mp.children = append(mp.children, child)
				p.part(child, digest, depth+1)
				if !p.lr.next() {
					break
				}
				i, isClose := p.boundary()
				if i != own {
					p.lr.unread()
					break
				}
				p.boundaryEnd = p.lr.pos
				if isClose || p.parts >= maxMIMEParts {
					closed = true
				}
			}
			if !closed {
				break
			}
		}
		p.bounds = p.bounds[:own]
		p.bodyKeep, p.lr.keep = saved, saved
		p.finishBody(mp, bodyStart, lf0)
	case eqFold(typ, "message") && eqFold(sub, "rfc822"):
		mp.message = true
		lf0 := p.lr.lfs
		child := &mimePart{}
		mp.children = []*mimePart{child}
		p.part(child, false, depth+1)
		p.finishBody(mp, bodyStart, lf0)
		// The message lies inside its part, whose header may have
		// given its last line break to the boundary.
		child.off = min(child.off, mp.bodyOff())
		if excess := child.end() - mp.end(); excess > 0 {
			cut := min(excess, child.bodySize)
			child.bodySize -= cut
			child.headerSize -= excess - cut
		}
	default:
		p.leafBody(mp, bodyStart)
	}
}

// header reads a header up to its empty line (consumed) or a boundary
// line (left unread), keeping the wanted fields.
func (p *mimeParser) header(mp *mimePart) {
	var cur *headerField
	var value []byte
	flush := func() {
		if cur != nil {
			// A folded first line keeps the space that starts
			// the next, as Dovecot has it.
			cur.value = string(bytes.TrimRight(value, " \t\r\n"))
			mp.h.fields = append(mp.h.fields, *cur)
			cur = nil
		}
	}
	p.lr.keep = maxLineKept
	defer func() { p.lr.keep = p.bodyKeep }()
	for p.lr.next() {
		if i, _ := p.boundary(); i >= 0 {
			p.lr.unread()
			mp.headerCut = true
			break
		}
		line := p.lr.content()
		if len(line) == 0 {
			mp.fieldsEnd = p.lr.start
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if cur != nil {
				cur.end = p.lr.start + p.lr.size
				if len(value) < maxFieldKept {
					value = append(value, '\n')
					value = append(value, line[:min(len(line), maxFieldKept-len(value))]...)
				}
			}
			continue
		}
		flush()
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		name := bytes.ToLower(bytes.TrimRight(line[:colon], " \t"))
		if !wantedField(name) {
			continue
		}
		cur = &headerField{name: string(name), off: p.lr.start, end: p.lr.start + p.lr.size}
		value = append(value[:0], bytes.TrimLeft(line[colon+1:min(len(line), colon+1+maxFieldKept)], " \t")...)
	}
	flush()
}

// leafBody reads a body that has no parts.
func (p *mimeParser) leafBody(mp *mimePart, bodyStart int64) {
	lf0 := p.lr.lfs
	for p.lr.next() {
		if i, _ := p.boundary(); i >= 0 {
			p.lr.unread()
			break
		}
	}
	p.finishBody(mp, bodyStart, lf0)
}

// finishBody sets the body's size and lines once the reader stands on
// the boundary line that ends it (unread) or at the end of the data.
// The line break before a boundary line is the boundary's: it is taken
// from the body, or from the header when the body is empty.
func (p *mimeParser) finishBody(mp *mimePart, bodyStart, lf0 int64) {
	lfs := p.lr.lfs - lf0
	end := p.lr.pos
	if p.lr.peeked {
		end = p.lr.start
		if p.lr.term > 0 {
			lfs-- // the boundary line's own LF
		}
		if t := int64(p.lr.prevTerm); t > 0 && p.noTrimAt != end && end-t >= max(mp.off, p.boundaryEnd) {
			end -= t
			if end >= bodyStart {
				lfs--
			}
			if mp.headerCut {
				// Dovecot takes the line break from a header a
				// boundary cut, but not from the message/rfc822
				// parts around it.
				p.noTrimAt = p.lr.start
			}
		}
	}
	if end < bodyStart {
		mp.headerSize = end - mp.off
		bodyStart = end
	}
	mp.bodySize = end - bodyStart
	mp.lines = max(0, lfs)
}

func eqFold(a, b string) bool { return len(a) == len(b) && bytes.EqualFold([]byte(a), []byte(b)) }
