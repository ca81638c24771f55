package imap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// FETCH answers are Dovecot 2.3's, octet for octet once quoted strings
// and literals are taken as the same value: TestFetchDovecotOracle
// compares every item on imaptest's fetch corpora and on hostile
// messages, and the MIME tree, ENVELOPE, BODYSTRUCTURE and BINARY code
// say where they follow Dovecot's reading over a naive one. Deliberate
// differences (fetchKnownDifferences lists the oracle's cases):
//
//   - a message stored with bare LFs is sent as stored, sizes and line
//     counts included; Dovecot sends CRLF. The store keeps what SMTP and
//     APPEND delivered, which is CRLF.
//   - strings with a quote or backslash are quoted strings with escapes;
//     Dovecot sends them as literals.
//   - a Content-Transfer-Encoding whose value starts on a folded line is
//     read; Dovecot ignores it in BODYSTRUCTURE (7bit) and refuses BINARY
//     with NO [UNKNOWN-CTE].
//   - BINARY.SIZE answers for the part asked; Dovecot refuses it for every
//     part of a message with a part in an unknown encoding or that does
//     not decode, and counts a message/rfc822 part in base64 as empty.
//   - of two Content-Transfer-Encoding fields the first counts, for
//     BODYSTRUCTURE as in Dovecot and for BINARY too, where Dovecot takes
//     the last.
//   - a quoted-printable part ending in a soft line break is refused with
//     NO [PARSE] before anything is written; Dovecot's imap process sends
//     part of the literal and disconnects.
//   - header fields are kept up to maxFieldKept (1 MiB) each for ENVELOPE
//     and BODYSTRUCTURE; Dovecot keeps them whole.

// fetchOne writes "* seq FETCH (...)" for message m of f. flags are the
// names to send for FLAGS (nil: FLAGS not sent unless args asks; the
// dispatcher passes the flags to force after an implicit \Seen), modseq
// is sent as MODSEQ when withModSeq. utf8 is UTF8=ACCEPT enabled.
// gone reports that the message file vanished (expunged by another
// session): then it writes what Dovecot writes (UID, FLAGS,
// INTERNALDATE, RFC822.SIZE from m, ENVELOPE all NIL, no body items;
// see fetch.go's writeExpungedItems and TestFetchExpungedElsewhere) and
// returns gone=true with err nil.
//
// Index items (UID, FLAGS, MODSEQ, INTERNALDATE, RFC822.SIZE) never open
// the file; the others open it once. Whole-message, header and text
// ranges are copied from the file byte for byte and streamed, as are
// body parts; only header fields are held in memory (each cut at
// maxFieldKept). A BINARY item is decoded twice, once to learn its size
// for the literal and once to send it, so that a large attachment is
// never held either. A BINARY of a part in an unknown transfer encoding
// (or one that does not decode) is refused with an *imap.Error before
// anything is written: NO [UNKNOWN-CTE] (RFC 3516) or NO [PARSE], as
// Dovecot answers.
func fetchOne(ctx context.Context, enc *wire.Encoder, f *store.Folder, seq uint32, m store.Message, args *wire.Fetch, flags []string, withModSeq, utf8 bool) (gone bool, err error) {
	o := &args.Options
	var msg *fetchMessage
	if needsFile(args) {
		r, err := f.Open(ctx, m.UID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			gone = true
		case err != nil:
			return false, fmt.Errorf("fetch uid %d: %w", m.UID, err)
		default:
			defer r.Close()
			msg = &fetchMessage{r: r, size: r.Size()}
		}
	}
	if flags == nil && o.Flags {
		var buf [16]string
		flags = f.AppendFlagNames(buf[:0], m.Flags)
		if f.IsRecent(m.UID) {
			flags = append(flags, `\Recent`)
		}
	}
	return gone, writeFetch(enc, seq, m, msg, gone, args, flags, withModSeq, utf8)
}

// writeFetch writes the response of fetchOne once the file is open (msg,
// nil when not needed or gone) and the flags are known.
func writeFetch(enc *wire.Encoder, seq uint32, m store.Message, msg *fetchMessage, gone bool, args *wire.Fetch, flags []string, withModSeq, utf8 bool) error {
	o := &args.Options
	var bins []binaryItem
	if msg != nil && (len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0) {
		var err error
		if bins, err = msg.binaryItems(o); err != nil {
			return err
		}
	}

	saved := enc.UTF8
	enc.UTF8 = utf8
	defer func() { enc.UTF8 = saved }()

	w := enc.Fetch(seq)
	if o.UID || gone {
		// A gone message's response needs an item, and the UID tells
		// the client which message lost its file items.
		w.UID(goimap.UID(m.UID))
	}
	if flags != nil {
		w.FlagNames(flags)
	}
	if withModSeq {
		w.ModSeq(m.ModSeq)
	}
	if o.InternalDate {
		w.InternalDate(m.InternalDate)
	}
	if o.RFC822Size {
		w.RFC822Size(m.Size)
	}
	if msg == nil {
		if gone && o.Envelope {
			w.Envelope(&wire.Envelope{})
		}
		w.End()
		return enc.Err()
	}
	if o.Envelope {
		if o.BodyStructure != nil {
			msg.tree() // parsed once for both
		}
		w.Envelope(envelope(msg.header()))
	}
	if bs := o.BodyStructure; bs != nil {
		w.BodyPart(bodyPart(msg.tree(), false), bs.Extended)
	}
	if args.RFC822.Whole {
		if err := msg.writeRange(&w, "RFC822", 0, msg.size, nil); err != nil {
			return err
		}
	}
	if args.RFC822.Header {
		if err := msg.writeRange(&w, "RFC822.HEADER", 0, msg.headerSize(), nil); err != nil {
			return err
		}
	}
	if args.RFC822.Text {
		h := msg.headerSize()
		if err := msg.writeRange(&w, "RFC822.TEXT", h, msg.size-h, nil); err != nil {
			return err
		}
	}
	for _, bs := range o.BodySection {
		if err := msg.writeSection(&w, bs); err != nil {
			return err
		}
	}
	for i := range bins {
		if err := msg.writeBinary(&w, &bins[i]); err != nil {
			return err
		}
	}
	w.End()
	return enc.Err()
}

// needsFile reports whether args asks for more than the index holds.
func needsFile(args *wire.Fetch) bool {
	o := &args.Options
	return o.Envelope || o.BodyStructure != nil || len(o.BodySection) > 0 || len(o.BinarySection) > 0 ||
		len(o.BinarySectionSize) > 0 || args.RFC822.Whole || args.RFC822.Header || args.RFC822.Text
}

// fetchMessage is an open message file with its MIME tree, parsed when
// first needed (a BODY[] alone needs none).
type fetchMessage struct {
	r     io.ReaderAt
	size  int64
	root  *mimePart
	hdr   *partHeader
	hsize int64
}

func (fm *fetchMessage) tree() *mimePart {
	if fm.root == nil {
		fm.root = parseMIME(io.NewSectionReader(fm.r, 0, fm.size))
	}
	return fm.root
}

// header is the message's header fields, from the tree when it is there.
func (fm *fetchMessage) header() *partHeader {
	if fm.root != nil {
		return &fm.root.h
	}
	if fm.hdr == nil {
		fm.hdr = parseHeader(io.NewSectionReader(fm.r, 0, fm.size))
	}
	return fm.hdr
}

// headerSize is the root header's size, from the tree when it is there.
func (fm *fetchMessage) headerSize() int64 {
	if fm.root != nil {
		return fm.root.headerSize
	}
	if fm.hsize == 0 {
		fm.hsize = headerLength(io.NewSectionReader(fm.r, 0, fm.size))
	}
	return fm.hsize
}

// writeRange writes the item name with the octets [off, off+n) of the
// file, cut by a partial.
func (fm *fetchMessage) writeRange(w *wire.FetchWriter, name string, off, n int64, p *goimap.SectionPartial) error {
	off, n = cut(off, n, p)
	return w.Section(name, n, nulFilter{io.NewSectionReader(fm.r, off, n)}, false)
}

// cut applies a partial <o.n> to the range [off, off+n).
func cut(off, n int64, p *goimap.SectionPartial) (int64, int64) {
	if p == nil {
		return off, n
	}
	skip := min(max(p.Offset, 0), n)
	return off + skip, min(n-skip, max(p.Size, 0))
}

// findPart resolves a section-part as Dovecot does: a number picks a
// multipart's child; on any other part only 1 is allowed, and only as
// the last number unless the part is a message/rfc822, whose message a
// further number descends into. nil when there is no such part.
func findPart(root *mimePart, path []int) *mimePart {
	p := root
	for i, n := range path {
		more := i+1 < len(path)
		if p.multipart {
			if n < 1 || n > len(p.children) {
				return nil
			}
			p = p.children[n-1]
		} else if n != 1 || (more && !p.message) {
			return nil
		}
		if more && p.message && len(p.children) == 1 {
			p = p.children[0]
		}
	}
	return p
}

// writeSection writes one BODY[...] item.
func (fm *fetchMessage) writeSection(w *wire.FetchWriter, bs *goimap.FetchItemBodySection) error {
	name := wire.SectionName(bs)
	if len(bs.Part) == 0 && len(bs.HeaderFields) == 0 && len(bs.HeaderFieldsNot) == 0 {
		// The whole message, its header or its text: no tree needed.
		switch bs.Specifier {
		case goimap.PartSpecifierNone:
			return fm.writeRange(w, name, 0, fm.size, bs.Partial)
		case goimap.PartSpecifierHeader:
			return fm.writeRange(w, name, 0, fm.headerSize(), bs.Partial)
		case goimap.PartSpecifierText:
			h := fm.headerSize()
			return fm.writeRange(w, name, h, fm.size-h, bs.Partial)
		}
	}
	var p *mimePart
	if len(bs.Part) == 0 {
		p = fm.tree()
	} else if p = findPart(fm.tree(), bs.Part); p != nil {
		switch bs.Specifier {
		case goimap.PartSpecifierNone:
			return fm.writeRange(w, name, p.bodyOff(), p.bodySize, bs.Partial)
		case goimap.PartSpecifierMIME:
			return fm.writeRange(w, name, p.off, p.headerSize, bs.Partial)
		}
		// HEADER and TEXT of a part are its message's.
		if p.message && len(p.children) == 1 {
			p = p.children[0]
		} else {
			p = nil
		}
	}
	if p == nil {
		return w.Section(name, 0, strings.NewReader(""), false)
	}
	if bs.Specifier == goimap.PartSpecifierText {
		return fm.writeRange(w, name, p.bodyOff(), p.bodySize, bs.Partial)
	}
	if len(bs.HeaderFields) == 0 && len(bs.HeaderFieldsNot) == 0 {
		return fm.writeRange(w, name, p.off, p.headerSize, bs.Partial)
	}
	// HEADER.FIELDS (.NOT): filtered twice, to count, then to send.
	filter := func() io.Reader {
		return newHeaderFilter(io.NewSectionReader(fm.r, p.off, p.headerSize), bs.HeaderFields, bs.HeaderFieldsNot)
	}
	total, err := io.Copy(io.Discard, filter())
	if err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	off, n := cut(0, total, bs.Partial)
	r := filter()
	if _, err := io.CopyN(io.Discard, r, off); err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	return w.Section(name, n, nulFilter{r}, false)
}

// nulFilter replaces NULs, which no IMAP literal may carry (RFC 9051
// CHAR8), with 0x80, as Dovecot does in BODY and RFC822 items; BINARY
// items are literal8s and carry them.
type nulFilter struct{ r io.Reader }

func (f nulFilter) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	for b := p[:n]; ; {
		i := indexByte(b, 0)
		if i < 0 {
			break
		}
		b[i] = 0x80
		b = b[i+1:]
	}
	return n, err
}

// headerFilter streams the fields of a header that are (or, with not,
// are not) among names, then the empty line that ends a header.
type headerFilter struct {
	br      *bufio.Reader
	names   []string
	not     bool
	keep    bool
	buf     []byte
	ended   bool
	started bool // a field was seen
	midCut  bool // inside a line longer than the buffer
}

func newHeaderFilter(r io.Reader, fields, notFields []string) *headerFilter {
	f := &headerFilter{br: bufio.NewReaderSize(r, 4096), names: fields}
	if len(notFields) > 0 {
		f.names, f.not = notFields, true
	}
	return f
}

func (f *headerFilter) Read(p []byte) (int, error) {
	for len(f.buf) == 0 {
		if f.ended {
			return 0, io.EOF
		}
		seg, err := f.br.ReadSlice('\n')
		full := !errors.Is(err, bufio.ErrBufferFull)
		if len(seg) > 0 && !f.midCut {
			// The start of a line.
			switch {
			case seg[0] == '\n' || (seg[0] == '\r' && len(seg) >= 2 && seg[1] == '\n'):
				f.finish(true)
				continue
			case (seg[0] == ' ' || seg[0] == '\t') && f.started:
				// A continuation keeps its field's choice.
			default:
				// A field, or white space before any: Dovecot takes
				// that for a field of its own.
				f.keep = f.matches(seg) != f.not
				f.started = true
			}
		}
		f.midCut = !full
		if f.keep && len(seg) > 0 {
			f.buf = append(f.buf[:0], seg...)
		}
		if err != nil && full {
			f.finish(false)
		}
	}
	n := copy(p, f.buf)
	f.buf = f.buf[n:]
	return n, nil
}

// finish ends the output with the empty line as Dovecot does: always
// for HEADER.FIELDS, for .NOT only when the header had one.
func (f *headerFilter) finish(blank bool) {
	f.ended = true
	if blank || !f.not {
		f.buf = append(f.buf, '\r', '\n')
	}
}

func (f *headerFilter) matches(line []byte) bool {
	name := line
	if i := indexByte(line, ':'); i >= 0 {
		name = line[:i]
	}
	name = []byte(strings.TrimRight(string(name), " \t\r\n"))
	for _, n := range f.names {
		if strings.EqualFold(n, string(name)) {
			return true
		}
	}
	return false
}

func indexByte(b []byte, c byte) int { return bytes.IndexByte(b, c) }

// headerLength is the length of the header including the empty line
// that ends it, or the whole message when there is none (the MIME
// parser's reading of a header).
func headerLength(r io.Reader) int64 {
	p := newMIMEParser(r)
	var mp mimePart
	p.header(&mp)
	return p.lr.pos
}

// binaryItem is a BINARY[...] or BINARY.SIZE[...] item with what the
// counting pass learnt.
type binaryItem struct {
	part    []int
	sizeOf  bool // BINARY.SIZE
	partial *goimap.SectionPartial
	p       *mimePart // nil: no such part (empty)
	total   int64     // decoded size
	lit8    bool      // sent as a literal8
}

// binaryItems resolves and counts the BINARY items, so that a part that
// cannot be decoded is refused before the response starts.
func (fm *fetchMessage) binaryItems(o *goimap.FetchOptions) ([]binaryItem, error) {
	var out []binaryItem
	for _, b := range o.BinarySection {
		out = append(out, binaryItem{part: b.Part, partial: b.Partial})
	}
	for _, b := range o.BinarySectionSize {
		out = append(out, binaryItem{part: b.Part, sizeOf: true})
	}
	for i := range out {
		it := &out[i]
		if it.p = findPart(fm.tree(), it.part); it.p == nil {
			continue
		}
		r, decodedAny, err := fm.binaryReader(it.p, len(it.part) == 0)
		if err != nil {
			return nil, parseError(err)
		}
		cw := &countWriter{}
		if _, err := io.Copy(cw, r); err != nil {
			return nil, parseError(err)
		}
		// Dovecot sends decoded data, and data with NULs, as a literal8.
		it.total, it.lit8 = cw.n, decodedAny || cw.nul
	}
	return out, nil
}

// binaryReader returns the content of part p (the whole message when
// whole): a leaf decoded from its transfer encoding; a multipart or
// message/rfc822 as it is, save that every leaf inside is decoded and
// its Content-Transfer-Encoding field says binary, as Dovecot answers.
// It is a chain of file sections and decoders, read once to count and
// once to send. decoded reports whether anything is decoded.
func (fm *fetchMessage) binaryReader(p *mimePart, whole bool) (r io.Reader, decoded bool, err error) {
	var parts []io.Reader
	if whole {
		decoded, err = fm.binaryPart(&parts, p)
	} else {
		decoded, err = fm.binaryBody(&parts, p)
	}
	return io.MultiReader(parts...), decoded, err
}

func (fm *fetchMessage) raw(parts *[]io.Reader, off, end int64) {
	if end > off {
		*parts = append(*parts, io.NewSectionReader(fm.r, off, end-off))
	}
}

// binaryPart adds a part's header and content.
func (fm *fetchMessage) binaryPart(parts *[]io.Reader, p *mimePart) (bool, error) {
	if p.multipart || p.message || !needsDecoding(&p.h) {
		fm.raw(parts, p.off, p.bodyOff())
		return fm.binaryBody(parts, p)
	}
	// The header without its Content-Transfer-Encoding fields, then
	// one saying binary, then the empty line: Dovecot's rewrite.
	at := p.off
	for _, f := range p.h.fields {
		if f.name == "content-transfer-encoding" {
			fm.raw(parts, at, f.off)
			at = f.end
		}
	}
	fm.raw(parts, at, min(p.fieldsEnd, p.bodyOff()))
	*parts = append(*parts, strings.NewReader("Content-Transfer-Encoding: binary\r\n"))
	fm.raw(parts, min(p.fieldsEnd, p.bodyOff()), p.bodyOff())
	return fm.binaryBody(parts, p)
}

// binaryBody adds a part's content.
func (fm *fetchMessage) binaryBody(parts *[]io.Reader, p *mimePart) (bool, error) {
	switch {
	case p.message && len(p.children) == 1:
		c := p.children[0]
		d, err := fm.binaryPart(parts, c)
		// What the message leaves of its part (a line break Dovecot
		// keeps there).
		fm.raw(parts, c.end(), p.end())
		return d, err
	case p.multipart:
		decoded := false
		at := p.bodyOff()
		for _, c := range p.children {
			fm.raw(parts, at, c.off)
			d, err := fm.binaryPart(parts, c)
			if err != nil {
				return false, err
			}
			decoded = decoded || d
			at = c.end()
		}
		fm.raw(parts, at, p.end())
		return decoded, nil
	}
	r, err := decoder(&p.h, io.NewSectionReader(fm.r, p.bodyOff(), p.bodySize))
	if err != nil {
		return false, err
	}
	*parts = append(*parts, r)
	return needsDecoding(&p.h), nil
}

func needsDecoding(h *partHeader) bool {
	switch strings.ToLower(transferEncoding(h)) {
	case "", "7bit", "8bit", "binary":
		return false
	}
	return true
}

// decoder undoes a leaf's transfer encoding; an unknown one is refused
// with NO [UNKNOWN-CTE] (RFC 3516).
func decoder(h *partHeader, body io.Reader) (io.Reader, error) {
	switch cte := strings.ToLower(transferEncoding(h)); cte {
	case "", "7bit", "8bit", "binary":
		return body, nil
	case "base64":
		return newBase64Decoder(body), nil
	case "quoted-printable":
		return newQPDecoder(body), nil
	default:
		return nil, &goimap.Error{Type: goimap.StatusResponseTypeNo, Code: goimap.ResponseCodeUnknownCTE,
			Text: "Unknown Content-Transfer-Encoding"}
	}
}

func parseError(err error) error {
	var e *goimap.Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, errBadEncoding) {
		return &goimap.Error{Type: goimap.StatusResponseTypeNo, Code: goimap.ResponseCodeParse, Text: "Invalid data in MIME part"}
	}
	return fmt.Errorf("fetch binary: %w", err)
}

// writeBinary writes one BINARY or BINARY.SIZE item, reading the
// content again as the counting pass did.
func (fm *fetchMessage) writeBinary(w *wire.FetchWriter, it *binaryItem) error {
	if it.sizeOf {
		w.NumberItem(binaryName("BINARY.SIZE", it.part, nil), uint64(it.total))
		return nil
	}
	name := binaryName("BINARY", it.part, it.partial)
	off, n := cut(0, it.total, it.partial)
	if it.p == nil {
		return w.Section(name, 0, strings.NewReader(""), false)
	}
	r, _, err := fm.binaryReader(it.p, len(it.part) == 0)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(io.Discard, r, off); err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	return w.Section(name, n, r, it.lit8)
}

func binaryName(item string, part []int, p *goimap.SectionPartial) string {
	var b strings.Builder
	b.WriteString(item)
	b.WriteByte('[')
	for i, n := range part {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(n))
	}
	b.WriteByte(']')
	if p != nil {
		b.WriteString("<" + strconv.FormatInt(p.Offset, 10) + ">")
	}
	return b.String()
}

// countWriter counts octets and notes a NUL.
type countWriter struct {
	n   int64
	nul bool
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if !c.nul && indexByte(p, 0) >= 0 {
		c.nul = true
	}
	return len(p), nil
}
