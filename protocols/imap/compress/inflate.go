package compress

// A streaming RFC 1951 inflater. Go's compress/flate keeps a Huffman
// block's output until its window fills, a stored block comes or the
// stream ends, and meanwhile waits for the next block's header: a command
// that zlib's Z_PARTIAL_FLUSH ends (the data block, then an empty fixed
// block, not byte-aligned) never reaches the server. This one decodes
// symbol by symbol and, rather than wait for an octet the source has not
// delivered yet, hands over what it has already inflated.

import (
	"errors"
	"fmt"
	"io"
)

const (
	windowSize  = 1 << 15 // the farthest a distance reaches back
	windowMask  = windowSize - 1
	maxCodeBits = 15 // the longest Huffman code
	fastBits    = 9  // codes up to this long decode with one table look-up
	maxLitCodes = 286
	maxDistCode = 30
	endOfBlock  = 256
)

// The decoder's states: each names what it expects next in the stream,
// so that a Read may stop between any two fields and the next go on.
const (
	stHeader    = iota // BFINAL and BTYPE
	stStoredLen        // a stored block's LEN and NLEN
	stStored           // a stored block's octets
	stDynCounts        // HLIT, HDIST, HCLEN
	stDynCLens         // the code length code's lengths
	stDynLens          // the literal/length and distance code lengths
	stLenSym           // a literal/length symbol
	stLenExtra         // a length's extra bits
	stDistSym          // a distance symbol
	stDistExtra        // a distance's extra bits
	stCopy             // a copy from the window in progress
	stDone             // after the final block
)

// Length and distance symbols' bases and extra bits (RFC 1951 3.2.5).
var (
	lenBase   = [...]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra  = [...]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase  = [...]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [...]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	// clenOrder is the order in which a dynamic block lists the code
	// length code's lengths.
	clenOrder = [...]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// errWait stops a Read that has output to hand over before it would
// block for more input.
var errWait = errors.New("compress: wait for input")

// huffman is a canonical Huffman code's decoding table.
type huffman struct {
	count  [maxCodeBits + 1]uint16 // codes of each length
	symbol [288]uint16             // symbols by code length, then value
	// fast maps the next fastBits bits of input to len<<12|symbol for
	// codes up to fastBits long; 0 when the code is longer or absent.
	fast   [1 << fastBits]uint16
	maxLen uint // the longest code; 0 for a code with no symbols
}

// build makes the canonical code of lengths (RFC 1951 3.2.2). An
// incomplete code is refused unless single allows the one-symbol code of
// length 1 (zlib sends one for a block that uses a single distance).
func (h *huffman) build(lengths []uint8, single bool) error {
	*h = huffman{}
	n := 0
	for _, l := range lengths {
		if l != 0 {
			h.count[l]++
			n++
			h.maxLen = max(h.maxLen, uint(l))
		}
	}
	left := 1
	for l := 1; l <= maxCodeBits; l++ {
		left = left<<1 - int(h.count[l])
		if left < 0 {
			return fmt.Errorf("over-subscribed code lengths (%d codes of %d bits too many)", -left, l)
		}
	}
	if left > 0 && n > 0 && !(single && n == 1 && h.count[1] == 1) {
		return fmt.Errorf("incomplete code lengths (%d codes)", n)
	}
	var offs [maxCodeBits + 2]uint16
	for l := 1; l <= maxCodeBits; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	for sym, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = uint16(sym)
			offs[l]++
		}
	}
	code, i := 0, 0
	for l := 1; l <= fastBits; l++ {
		for range h.count[l] {
			// Huffman codes are packed from their first bit on, the
			// bit buffer's lowest bit first: index by the reversed code.
			rev := 0
			for b := 0; b < l; b++ {
				rev |= (code >> b & 1) << (l - 1 - b)
			}
			e := uint16(l)<<12 | h.symbol[i]
			for j := rev; j < len(h.fast); j += 1 << l {
				h.fast[j] = e
			}
			code++
			i++
		}
		code <<= 1
	}
	return nil
}

// inflater decodes one raw DEFLATE stream. Its state is all here,
// bounded: the window, three tables and the bit buffer.
type inflater struct {
	src   *counter
	bits  uint64 // input bits not consumed yet, the next one lowest
	nbits uint
	err   error // sticky

	state   int
	final   bool // the current block is the last
	fixed   bool // the current block uses the fixed codes
	symbols bool // the current Huffman block decoded a symbol

	stored int // octets left in a stored block

	// A dynamic block's header in progress.
	nlit, ndist, nclen int
	i                  int // the next length to read
	sym                int // a symbol whose extra bits are awaited; -1 for none
	lens               [maxLitCodes + maxDistCode]uint8

	lit, dist           *huffman
	dynLit, dynDist     huffman
	fixedLit, fixedDist huffman
	fixedBuilt          bool
	clen                huffman
	copyLen, copyDist   int
	win                 [windowSize]byte
	total               int64 // octets inflated, the window's end
	out                 []byte
	produced            int // octets of out inflated by this Read
}

func newInflater(src *counter) *inflater {
	return &inflater{src: src, sym: -1}
}

// corrupt reports what is wrong where in the input.
func (f *inflater) corrupt(format string, args ...any) error {
	return fmt.Errorf("corrupt stream at input octet %d: %s", f.src.n, fmt.Sprintf(format, args...))
}

// more adds input to the bit buffer: the octets already buffered, as
// many as fit, or else one octet read from the source, unless this Read
// has output to hand over and the octet would have to be waited for.
func (f *inflater) more() error {
	br := f.src.br
	if k := min(br.Buffered(), int(64-f.nbits)/8); k > 0 {
		buf, _ := br.Peek(k) // buffered: neither blocks nor fails
		for _, b := range buf {
			f.bits |= uint64(b) << f.nbits
			f.nbits += 8
		}
		br.Discard(k)
		f.src.n += int64(k)
		return nil
	}
	if f.produced > 0 {
		return errWait
	}
	b, err := f.src.ReadByte()
	if err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	f.bits |= uint64(b) << f.nbits
	f.nbits += 8
	return nil
}

func (f *inflater) need(n uint) error {
	for f.nbits < n {
		if err := f.more(); err != nil {
			return err
		}
	}
	return nil
}

func (f *inflater) take(n uint) int {
	v := int(f.bits & (1<<n - 1))
	f.bits >>= n
	f.nbits -= n
	return v
}

// decode reads one symbol of h.
func (f *inflater) decode(h *huffman) (int, error) {
	for {
		if e := h.fast[f.bits&(1<<fastBits-1)]; e != 0 && uint(e>>12) <= f.nbits {
			f.take(uint(e >> 12))
			return int(e & 0xfff), nil
		}
		// Canonical decoding, a bit at a time: the codes of each
		// length are consecutive numbers after the shorter ones.
		code, first, index := 0, 0, 0
		b := f.bits
		for l := uint(1); l <= h.maxLen && l <= f.nbits; l++ {
			code |= int(b & 1)
			b >>= 1
			c := int(h.count[l])
			if code-first < c {
				f.take(l)
				return int(h.symbol[index+code-first]), nil
			}
			index += c
			first = (first + c) << 1
			code <<= 1
		}
		if f.nbits >= h.maxLen {
			if h.maxLen == 0 {
				return 0, f.corrupt("a symbol of a code without symbols")
			}
			return 0, f.corrupt("invalid Huffman code")
		}
		if err := f.more(); err != nil {
			return 0, err
		}
	}
}

// emit appends an inflated octet to the output and the window.
func (f *inflater) emit(b byte) {
	f.out[f.produced] = b
	f.produced++
	f.win[f.total&windowMask] = b
	f.total++
}

// Read inflates into p. It blocks for input only while it has inflated
// nothing for p; the end of the final block is io.EOF, a stream cut
// short io.ErrUnexpectedEOF.
func (f *inflater) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	f.out, f.produced = p, 0
	for f.produced < len(p) {
		if err := f.step(); err != nil {
			if err == errWait {
				break
			}
			f.err = err
			return f.produced, err
		}
	}
	f.out = nil
	return f.produced, nil
}

// atFlush reports whether a stream ending where it stops now ended at a
// flush, with only zero bits left: at a block boundary (a sync or full
// flush, or no input at all), or inside the empty fixed block that ends
// zlib's partial flush, of which zlib may keep up to 7 bits until the
// next flush.
func (f *inflater) atFlush() bool {
	switch {
	case f.bits != 0:
		return false
	case f.state == stHeader:
		return true
	case f.state == stLenSym:
		return f.fixed && !f.final && !f.symbols
	}
	return false
}

// step decodes as far as the next state, or fills the output.
func (f *inflater) step() error {
	switch f.state {
	case stHeader:
		if err := f.need(3); err != nil {
			return err
		}
		f.final = f.take(1) == 1
		f.fixed, f.symbols = false, false
		switch f.take(2) {
		case 0:
			f.take(f.nbits & 7) // to the octet boundary
			f.state = stStoredLen
		case 1:
			if !f.fixedBuilt {
				f.buildFixed()
			}
			f.lit, f.dist, f.fixed = &f.fixedLit, &f.fixedDist, true
			f.state = stLenSym
		case 2:
			f.state = stDynCounts
		default:
			return f.corrupt("invalid block type 3")
		}
	case stStoredLen:
		if err := f.need(32); err != nil {
			return err
		}
		n, nn := f.take(16), f.take(16)
		if n != ^nn&0xffff {
			return f.corrupt("stored block length %#04x and its complement %#04x disagree", n, nn)
		}
		f.stored = n
		f.state = stStored
	case stStored:
		return f.storedBlock()
	case stDynCounts:
		if err := f.need(14); err != nil {
			return err
		}
		f.nlit, f.ndist, f.nclen = f.take(5)+257, f.take(5)+1, f.take(4)+4
		if f.nlit > maxLitCodes {
			return f.corrupt("%d literal/length codes, at most %d", f.nlit, maxLitCodes)
		}
		if f.ndist > maxDistCode {
			return f.corrupt("%d distance codes, at most %d", f.ndist, maxDistCode)
		}
		f.lens = [len(f.lens)]uint8{}
		f.i = 0
		f.state = stDynCLens
	case stDynCLens:
		for ; f.i < f.nclen; f.i++ {
			if err := f.need(3); err != nil {
				return err
			}
			f.lens[clenOrder[f.i]] = uint8(f.take(3))
		}
		if err := f.clen.build(f.lens[:19], false); err != nil {
			return f.corrupt("code length code: %v", err)
		}
		if f.clen.maxLen == 0 {
			return f.corrupt("code length code without symbols")
		}
		f.lens = [len(f.lens)]uint8{}
		f.i, f.sym = 0, -1
		f.state = stDynLens
	case stDynLens:
		return f.dynLens()
	case stLenSym:
		return f.literals()
	case stLenExtra:
		i := f.sym - 257
		if err := f.need(uint(lenExtra[i])); err != nil {
			return err
		}
		f.copyLen = int(lenBase[i]) + f.take(uint(lenExtra[i]))
		f.state = stDistSym
	case stDistSym:
		sym, err := f.decode(f.dist)
		if err != nil {
			return err
		}
		if sym >= maxDistCode {
			return f.corrupt("invalid distance symbol %d", sym)
		}
		f.sym = sym
		f.state = stDistExtra
	case stDistExtra:
		if err := f.need(uint(distExtra[f.sym])); err != nil {
			return err
		}
		f.copyDist = int(distBase[f.sym]) + f.take(uint(distExtra[f.sym]))
		if int64(f.copyDist) > f.total {
			return f.corrupt("distance %d beyond the %d octets inflated", f.copyDist, f.total)
		}
		f.sym = -1
		f.state = stCopy
	case stCopy:
		// In runs that neither overlap themselves nor wrap around
		// the window.
		for f.copyLen > 0 && f.produced < len(f.out) {
			from, to := int((f.total-int64(f.copyDist))&windowMask), int(f.total&windowMask)
			n := min(f.copyLen, len(f.out)-f.produced, f.copyDist, windowSize-from, windowSize-to)
			copy(f.out[f.produced:], f.win[from:from+n])
			copy(f.win[to:], f.win[from:from+n])
			f.produced += n
			f.total += int64(n)
			f.copyLen -= n
		}
		if f.copyLen == 0 {
			f.state = stLenSym
		}
	case stDone:
		return io.EOF
	}
	return nil
}

// literals decodes literal/length symbols while there is room for them.
func (f *inflater) literals() error {
	for f.produced < len(f.out) {
		sym, err := f.decode(f.lit)
		if err != nil {
			return err
		}
		f.symbols = true
		switch {
		case sym < endOfBlock:
			f.emit(byte(sym))
		case sym == endOfBlock:
			return f.endBlock()
		case sym-257 < len(lenBase):
			f.sym = sym
			f.state = stLenExtra
			return nil
		default:
			return f.corrupt("invalid literal/length symbol %d", sym)
		}
	}
	return nil
}

func (f *inflater) endBlock() error {
	if f.final {
		f.state = stDone
		return io.EOF
	}
	f.state = stHeader
	return nil
}

// storedBlock copies a stored block's octets, first those left in the
// bit buffer (whole octets after the alignment), then from the source.
func (f *inflater) storedBlock() error {
	for f.stored > 0 && f.nbits >= 8 && f.produced < len(f.out) {
		f.emit(byte(f.take(8)))
		f.stored--
	}
	for f.stored > 0 && f.produced < len(f.out) {
		room := min(f.stored, len(f.out)-f.produced)
		if buffered := f.src.br.Buffered(); buffered == 0 {
			if f.produced > 0 {
				return errWait
			}
		} else {
			room = min(room, buffered)
		}
		start := f.produced
		n, err := f.src.Read(f.out[start : start+room])
		for _, b := range f.out[start : start+n] {
			f.win[f.total&windowMask] = b
			f.total++
		}
		f.produced += n
		f.stored -= n
		if err != nil && f.stored > 0 {
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	if f.stored == 0 {
		return f.endBlock()
	}
	return nil
}

// dynLens reads a dynamic block's literal/length and distance code
// lengths, coded with the code length code, and builds both codes.
func (f *inflater) dynLens() error {
	n := f.nlit + f.ndist
	for f.i < n {
		if f.sym < 0 {
			sym, err := f.decode(&f.clen)
			if err != nil {
				return err
			}
			if sym < 16 {
				f.lens[f.i] = uint8(sym)
				f.i++
				continue
			}
			if sym == 16 && f.i == 0 {
				return f.corrupt("repeat of the previous code length before any")
			}
			f.sym = sym
		}
		var extra uint
		var rep int
		var val uint8
		switch f.sym {
		case 16:
			extra, rep, val = 2, 3, f.lens[f.i-1]
		case 17:
			extra, rep = 3, 3
		default:
			extra, rep = 7, 11
		}
		if err := f.need(extra); err != nil {
			return err
		}
		rep += f.take(extra)
		if f.i+rep > n {
			return f.corrupt("code lengths repeat past the %d codes", n)
		}
		for ; rep > 0; rep-- {
			f.lens[f.i] = val
			f.i++
		}
		f.sym = -1
	}
	if err := f.dynLit.build(f.lens[:f.nlit], true); err != nil {
		return f.corrupt("literal/length code: %v", err)
	}
	if f.lens[endOfBlock] == 0 {
		// Every block ends with one: without it, a block would only
		// end in an error.
		return f.corrupt("literal/length code without end-of-block")
	}
	if err := f.dynDist.build(f.lens[f.nlit:n], true); err != nil {
		return f.corrupt("distance code: %v", err)
	}
	f.lit, f.dist = &f.dynLit, &f.dynDist
	f.state = stLenSym
	return nil
}

// buildFixed makes the fixed codes (RFC 1951 3.2.6).
func (f *inflater) buildFixed() {
	var l [288]uint8
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	f.fixedLit.build(l[:], false)
	for i := range 32 {
		l[i] = 5
	}
	f.fixedDist.build(l[:32], false)
	f.fixedBuilt = true
}
