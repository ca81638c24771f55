package compress

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// inflateAll inflates stream with our inflater, reading into buffers of
// the sizes given in turn.
func inflateAll(stream []byte, sizes ...int) ([]byte, error) {
	if len(sizes) == 0 {
		sizes = []int{32 << 10}
	}
	f := newInflater(&counter{br: bufio.NewReader(bytes.NewReader(stream))})
	var out []byte
	for i := 0; ; i++ {
		buf := make([]byte, sizes[i%len(sizes)])
		n, err := f.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// text returns n octets of made-up mail text, the same for a seed.
func text(n int, seed uint64) []byte {
	words := strings.Fields("the of and to a in that is was he for it with as his on be at by I this had not are but from or have an they which one you were her all she there would their we him been has when who will more no if out so said what up its about into than them can only other new some could time these two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people Mr how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three Subject: From: To: Date: Message-ID: <a1b2c3@example.net> \r\n")
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(12) == 0 {
			b.WriteString(".\r\n")
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

func random(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		// Some runs and a small alphabet, so that matches occur.
		if r.IntN(4) == 0 {
			b[i] = byte(r.IntN(256))
		} else {
			b[i] = "abcd"[r.IntN(4)]
		}
	}
	return b
}

// TestInflateDifferential inflates what compress/flate's own writer
// deflates, at every level, whole, sync-flushed between random chunks
// and written a few octets at a time.
func TestInflateDifferential(t *testing.T) {
	inputs := map[string][]byte{
		"empty":  nil,
		"text":   text(300<<10, 1),
		"random": random(200<<10, 2),
		"zeros":  make([]byte, 100<<10),
		"short":  []byte("a1 NOOP\r\n"),
	}
	for name, in := range inputs {
		for level := flate.HuffmanOnly; level <= flate.BestCompression; level++ {
			for _, mode := range []string{"whole", "flushed", "small writes"} {
				t.Run(fmt.Sprintf("%s/%d/%s", name, level, mode), func(t *testing.T) {
					var stream bytes.Buffer
					fw, err := flate.NewWriter(&stream, level)
					if err != nil {
						t.Fatal(err)
					}
					r := rand.New(rand.NewPCG(uint64(level+10), 3))
					for rest := in; len(rest) > 0; {
						n := len(rest)
						switch mode {
						case "flushed":
							n = min(n, 1+r.IntN(40000))
						case "small writes":
							n = min(n, 1+r.IntN(9))
						}
						fw.Write(rest[:n])
						if mode == "flushed" {
							fw.Flush()
						}
						rest = rest[n:]
					}
					fw.Close()
					got, err := inflateAll(stream.Bytes(), 1, 100, 4096, 70000)
					if err != nil {
						t.Fatalf("after %d octets: %v", len(got), err)
					}
					if !bytes.Equal(got, in) {
						t.Fatalf("inflated %d octets, want %d; first difference near %q", len(got), len(in), firstDiff(string(got), string(in)))
					}
				})
			}
		}
	}
}

// gated hands out one chunk of input at a time and refuses to be read
// past it: an inflater that would block there fails the read instead.
type gated struct {
	chunk []byte
}

var errBlocked = errors.New("read past the input delivered so far: the inflater would block")

func (g *gated) Read(p []byte) (int, error) {
	if len(g.chunk) == 0 {
		return 0, errBlocked
	}
	n := copy(p, g.chunk)
	g.chunk = g.chunk[n:]
	return n, nil
}

// TestInflatePrompt: once the symbols of a message arrived, Read hands
// all of it over without waiting for the octets of the next block, here
// the LEN and NLEN of each sync flush's empty stored block, held back
// until the next message.
func TestInflatePrompt(t *testing.T) {
	msgs := [][]byte{[]byte("a1 NOOP\r\n"), text(5000, 4), random(100000, 5), []byte("a4 LOGOUT\r\n")}
	var stream bytes.Buffer
	fw, _ := flate.NewWriter(&stream, DefaultLevel)
	var ends []int
	for _, m := range msgs {
		fw.Write(m)
		fw.Flush()
		ends = append(ends, stream.Len()-4)
	}
	src := &gated{}
	z := NewReader(src, Limits{})
	start := 0
	for i, m := range msgs {
		src.chunk = stream.Bytes()[start:ends[i]]
		start = ends[i]
		got := make([]byte, len(m))
		if n, err := io.ReadFull(z, got); err != nil {
			t.Fatalf("message %d: %d of %d octets, %v", i, n, len(m), err)
		}
		if !bytes.Equal(got, m) {
			t.Fatalf("message %d inflated wrong", i)
		}
	}
}

// bitWriter packs a DEFLATE stream by hand: fields from their lowest
// bit, Huffman codes from their first (highest) bit.
type bitWriter struct {
	out   []byte
	nbits uint
}

func (w *bitWriter) put(v int, n uint) *bitWriter {
	for i := range n {
		if w.nbits%8 == 0 {
			w.out = append(w.out, 0)
		}
		w.out[len(w.out)-1] |= byte(v>>i&1) << (w.nbits % 8)
		w.nbits++
	}
	return w
}

func (w *bitWriter) code(c int, n uint) *bitWriter {
	for i := int(n) - 1; i >= 0; i-- {
		w.put(c>>i&1, 1)
	}
	return w
}

// dynamic starts a final dynamic block with nlit and ndist codes whose
// code length code gives the lengths clens (symbol: length).
func dynamic(nlit, ndist int, clens map[int]int) *bitWriter {
	w := (&bitWriter{}).put(1, 1).put(2, 2).put(nlit-257, 5).put(ndist-1, 5).put(15, 4)
	for _, sym := range clenOrder {
		w.put(clens[int(sym)], 3)
	}
	return w
}

// TestInflateCorrupt: each broken stream fails with its precise reason,
// and compress/flate agrees that it is broken.
func TestInflateCorrupt(t *testing.T) {
	// Code length codes used below, canonical: with 0, 1, 2 and 18 of
	// length 2, 0 is 00, 1 is 01, 2 is 10 and 18 is 11.
	two := map[int]int{0: 2, 1: 2, 2: 2, 18: 2}
	for _, tc := range []struct {
		name   string
		stream []byte
		want   string
	}{
		{"block type 3", []byte{0x07}, "invalid block type 3"},
		{"stored length mismatch", []byte{0x01, 0x05, 0x00, 0x00, 0x00, 'a'}, "stored block length 0x0005 and its complement 0x0000 disagree"},
		{"distance before start", []byte{0x63, 0x00, 0x42, 0x00}, "distance 2 beyond the 1 octets inflated"},
		// fixed block: literal 'a' (0x30+0x61 in 8 bits), length 3
		// (code 257: 7 bits 0000001), distance symbol 30 (11110).
		{"distance symbol 30", (&bitWriter{}).put(1, 1).put(1, 2).code(0x30+'a', 8).code(1, 7).code(30, 5).out, "invalid distance symbol 30"},
		{"literal/length symbol 286", (&bitWriter{}).put(1, 1).put(1, 2).code(0xc0+6, 8).out, "invalid literal/length symbol 286"},
		{"too many literal/length codes", (&bitWriter{}).put(1, 1).put(2, 2).put(30, 5).put(0, 5).put(0, 4).out, "287 literal/length codes, at most 286"},
		{"too many distance codes", (&bitWriter{}).put(1, 1).put(2, 2).put(0, 5).put(30, 5).put(0, 4).out, "31 distance codes, at most 30"},
		{"over-subscribed code length code", dynamic(257, 1, map[int]int{16: 1, 17: 1, 18: 1, 0: 1}).out, "code length code: over-subscribed"},
		{"incomplete code length code", dynamic(257, 1, map[int]int{18: 2, 0: 2}).out, "code length code: incomplete"},
		// 16 is 0 and 17 is 1.
		{"repeat before any length", dynamic(257, 1, map[int]int{16: 1, 17: 1}).code(0, 1).out, "repeat of the previous code length before any"},
		// 17 is 0 and 18 is 1: 138 + 138 zeros past 258 lengths.
		{"lengths past the codes", dynamic(257, 1, map[int]int{17: 1, 18: 1}).code(1, 1).put(127, 7).code(1, 1).put(127, 7).out, "code lengths repeat past the 258 codes"},
		{"no end-of-block", dynamic(257, 1, map[int]int{17: 1, 18: 1}).code(1, 1).put(127, 7).code(1, 1).put(109, 7).out, "without end-of-block"},
		// Symbols 0, 1 and 2 of length 1, then 255 zeros, 256 of 1.
		{"over-subscribed literal/length code", dynamic(257, 1, two).code(1, 2).code(1, 2).code(1, 2).code(3, 2).put(127, 7).code(3, 2).put(106, 7).code(1, 2).code(0, 2).out, "literal/length code: over-subscribed"},
		// 0 and 256 of length 1; the one distance code of length 2.
		{"incomplete distance code", dynamic(257, 1, two).code(1, 2).code(3, 2).put(127, 7).code(3, 2).put(106, 7).code(1, 2).code(2, 2).out, "distance code: incomplete"},
		// 256 and 257 of length 1 (0 and 1), no distance code:
		// a length, then nothing to decode its distance with.
		{"length without distance codes", dynamic(258, 1, two).code(3, 2).put(127, 7).code(3, 2).put(107, 7).code(1, 2).code(1, 2).code(0, 2).code(1, 1).out, "a symbol of a code without symbols"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := inflateAll(tc.stream)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("inflated %q, %v; want an error with %q", got, err, tc.want)
			}
			if _, ferr := io.ReadAll(flate.NewReader(bytes.NewReader(tc.stream))); ferr == nil || ferr == io.ErrUnexpectedEOF {
				t.Errorf("compress/flate reads it to %v: not a corrupt stream", ferr)
			}
		})
	}
}

// TestInflateDegenerate accepts the incomplete codes that zlib and
// compress/flate accept: one distance code, one literal/length code.
func TestInflateDegenerate(t *testing.T) {
	// Code length code: 18 is 0, 0 is 10, 1 is 11.
	clens := map[int]int{18: 1, 0: 2, 1: 2}
	for _, tc := range []struct {
		name   string
		stream []byte
		want   string
	}{
		// 'a' (0) and 256 (1) of length 1, one distance code of
		// length 1: "a", then the end of the block.
		{"one distance code", dynamic(257, 1, clens).code(0, 1).put(86, 7).code(3, 2).code(0, 1).put(127, 7).code(0, 1).put(9, 7).code(3, 2).code(3, 2).code(0, 1).code(1, 1).out, "a"},
		// 256 alone, of length 1, no distance code: an empty block.
		{"end of block alone", dynamic(257, 1, clens).code(0, 1).put(127, 7).code(0, 1).put(107, 7).code(3, 2).code(2, 2).code(0, 1).out, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := inflateAll(tc.stream)
			if err != nil || string(got) != tc.want {
				t.Errorf("inflated %q, %v; want %q", got, err, tc.want)
			}
			ref, ferr := io.ReadAll(flate.NewReader(bytes.NewReader(tc.stream)))
			if ferr != nil || string(ref) != tc.want {
				t.Errorf("compress/flate inflates %q, %v", ref, ferr)
			}
		})
	}
}

// FuzzInflate compares the inflater with compress/flate on arbitrary
// input: the same octets as far as both inflate, and the same verdict
// on a stream that one of them reads to its end.
func FuzzInflate(f *testing.F) {
	for _, level := range []int{flate.HuffmanOnly, flate.NoCompression, flate.BestSpeed, DefaultLevel, flate.BestCompression} {
		var b bytes.Buffer
		fw, _ := flate.NewWriter(&b, level)
		fw.Write(text(3000, uint64(level+5)))
		fw.Flush()
		fw.Write(random(2000, 7))
		fw.Close()
		f.Add(b.Bytes())
	}
	f.Add([]byte{0x63, 0x00, 0x42, 0x00})
	f.Add([]byte{0x01, 0x05, 0x00, 0xfa, 0xff, 'h', 'e', 'l', 'l', 'o'})
	f.Add(dynamic(257, 1, map[int]int{18: 1, 0: 2, 1: 2}).code(0, 1).put(86, 7).code(3, 2).code(0, 1).put(127, 7).code(0, 1).put(9, 7).code(3, 2).code(3, 2).code(0, 1).code(1, 1).out)
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := inflateAll(data, 1+len(data)%13, 4096)
		ref, ferr := io.ReadAll(flate.NewReader(bytes.NewReader(data)))
		n := min(len(got), len(ref))
		if !bytes.Equal(got[:n], ref[:n]) {
			t.Fatalf("inflated octets differ from compress/flate's near %d", n-len(firstDiff(string(got[:n]), string(ref[:n]))))
		}
		if (err == nil) != (ferr == nil) || err == nil && len(got) != len(ref) {
			t.Fatalf("inflated %d octets, %v; compress/flate %d octets, %v", len(got), err, len(ref), ferr)
		}
	})
}

// BenchmarkInflate inflates a megabyte of text deflated at the default
// level, with the inflater and with compress/flate.
func BenchmarkInflate(b *testing.B) {
	in := text(1<<20, 9)
	var stream bytes.Buffer
	fw, _ := flate.NewWriter(&stream, DefaultLevel)
	fw.Write(in)
	fw.Close()
	buf := make([]byte, 32<<10)
	for _, tc := range []struct {
		name string
		open func(r io.Reader) io.Reader
	}{
		{"ours", func(r io.Reader) io.Reader { return newInflater(&counter{br: bufio.NewReader(r)}) }},
		{"flate", func(r io.Reader) io.Reader { return flate.NewReader(r) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				r := tc.open(bytes.NewReader(stream.Bytes()))
				n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
				if err != nil || n != int64(len(in)) {
					b.Fatalf("%d octets, %v", n, err)
				}
			}
		})
	}
}

// TestHangUpAfterPartialFlush: zlib's partial flush ends a command with
// an empty fixed block of 10 bits, of which the client's compressor may
// keep up to 7 until its next flush. A client that hangs up there ended
// the stream at a flush (io.EOF); one cut inside the command did not.
func TestHangUpAfterPartialFlush(t *testing.T) {
	for k := range 8 {
		// Each octet over 143 takes 9 bits in the fixed code: the
		// command ends at each bit offset in turn.
		cmd := "a1 LIST \"\" caf" + strings.Repeat("\xe9", k) + "\r\n"
		w := (&bitWriter{}).put(0, 1).put(1, 2)
		for _, c := range []byte(cmd) {
			if c < 144 {
				w.code(0x30+int(c), 8)
			} else {
				w.code(0x190+int(c)-144, 9)
			}
		}
		w.code(0, 7) // end of block
		end := int(w.nbits+7) / 8
		w.put(0, 1).put(1, 2).code(0, 7)
		// zlib writes the whole octets and keeps the rest.
		cut := int(w.nbits) / 8
		got, err := io.ReadAll(NewReader(bytes.NewReader(w.out[:cut]), Limits{}))
		if err != nil || string(got) != cmd {
			t.Errorf("%d octets over 143, cut at %d of %d: %q, %v; want the command and io.EOF", k, cut, len(w.out), got, err)
		}
		if _, err := io.ReadAll(NewReader(bytes.NewReader(w.out[:end-1]), Limits{})); err == nil {
			t.Errorf("%d octets over 143: a command cut short ended without an error", k)
		}
	}
}
