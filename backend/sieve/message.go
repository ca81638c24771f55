package sieve

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

// Message is a message as scripts see it: header fields in order, and the
// body, whose MIME parts are decoded on first use by a body test. Parse it
// once per message and share it between recipients' runs.
type Message struct {
	raw    []byte
	fields []field
	body   []byte

	partsOnce sync.Once
	parts     []part
}

type field struct {
	name  string // as written
	value string // unfolded, raw bytes, outer white space trimmed
}

// part is one leaf (or multipart container) of the MIME tree, decoded.
type part struct {
	mediaType string // lower case type/subtype
	text      string // decoded to UTF-8, transfer encoding removed
}

// ParseMessage reads raw (header, empty line, body). It never fails: a
// damaged message is read as far as it goes, the way a script must still
// run on whatever arrived.
func ParseMessage(raw []byte) *Message {
	fields, body := splitHeader(raw)
	return &Message{raw: raw, fields: fields, body: body}
}

// Size is the message's size in octets, as the size test sees it.
func (m *Message) Size() int64 { return int64(len(m.raw)) }

// splitHeader returns the fields of the header at the top of b and the
// body after the empty line.
func splitHeader(b []byte) ([]field, []byte) {
	var fields []field
	var cont [][]byte // each field's unfolded value, built without copying it again per line
	for len(b) > 0 {
		end := bytes.IndexByte(b, '\n')
		line := b
		rest := []byte(nil)
		if end >= 0 {
			line, rest = b[:end], b[end+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			b = rest
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			// A continuation without a field before it is dropped.
			if n := len(fields); n > 0 {
				cont[n-1] = append(cont[n-1], line...)
			}
			b = rest
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || bytes.ContainsAny(line[:colon], " \t") && len(bytes.TrimRight(line[:colon], " \t")) == 0 {
			b = rest
			continue
		}
		name := string(bytes.TrimRight(line[:colon], " \t"))
		fields = append(fields, field{name: name})
		cont = append(cont, append([]byte(nil), line[colon+1:]...))
		b = rest
	}
	for i := range fields {
		fields[i].value = strings.Trim(string(cont[i]), " \t")
	}
	return fields, b
}

// header returns the values of the fields named name, in order, raw.
func header(fields []field, name string) []string {
	var vs []string
	for i := range fields {
		if strings.EqualFold(fields[i].name, name) {
			vs = append(vs, fields[i].value)
		}
	}
	return vs
}

// decodeHeader decodes RFC 2047 encoded words to UTF-8, as RFC 5228
// section 2.7.2 asks for the header test. Words that do not decode stay
// as they are.
func decodeHeader(v string) string {
	v = validUTF8(v)
	if !strings.Contains(v, "=?") {
		return v
	}
	d := mime.WordDecoder{CharsetReader: anyCharset}
	s, err := d.DecodeHeader(v)
	if err != nil {
		return v
	}
	return validUTF8(s)
}

// anyCharset converts from charsets go-message knows; text in others is
// taken as it is (and its invalid bytes replaced), as Dovecot does.
func anyCharset(cs string, r io.Reader) (io.Reader, error) {
	if cr, err := charset.Reader(cs, r); err == nil {
		return cr, nil
	}
	return r, nil
}

// validUTF8 replaces each byte that is not part of valid UTF-8 with
// U+FFFD, as Dovecot does with raw 8-bit header bytes.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// bodyParts returns the MIME parts of the message, decoded, in order:
// containers first, then their children.
func (m *Message) bodyParts() []part {
	m.partsOnce.Do(func() {
		m.parts = walkParts(m.fields, m.body, 0, nil)
	})
	return m.parts
}

// maxMIMEDepth bounds nested multiparts, so a hostile message cannot
// make the walk deep.
const maxMIMEDepth = 20

func walkParts(fields []field, body []byte, depth int, out []part) []part {
	ct := "text/plain"
	params := map[string]string{}
	if vs := header(fields, "Content-Type"); len(vs) > 0 {
		if t, p, err := mime.ParseMediaType(vs[0]); err == nil {
			ct, params = t, p
		} else if t, _, _ := strings.Cut(vs[0], ";"); strings.Contains(t, "/") {
			ct = strings.ToLower(strings.TrimSpace(t))
		}
	}
	if strings.HasPrefix(ct, "multipart/") && params["boundary"] != "" && depth < maxMIMEDepth {
		children, prologue := splitMultipart(body, params["boundary"])
		out = append(out, part{mediaType: ct, text: prologue})
		for _, c := range children {
			f, b := splitHeader(c)
			out = walkParts(f, b, depth+1, out)
		}
		return out
	}
	if ct == "message/rfc822" && depth < maxMIMEDepth {
		out = append(out, part{mediaType: ct, text: string(body)})
		f, b := splitHeader(body)
		return walkParts(f, b, depth+1, out)
	}
	return append(out, part{mediaType: ct, text: decodeBody(fields, body, params["charset"])})
}

// splitMultipart cuts body at the boundary delimiter lines; it returns
// the parts and the prologue and epilogue text.
func splitMultipart(body []byte, boundary string) ([][]byte, string) {
	delim := []byte("--" + boundary)
	var parts [][]byte
	var outside bytes.Buffer
	start := -1
	for off := 0; off <= len(body); {
		end := bytes.IndexByte(body[off:], '\n')
		next := len(body) + 1
		line := body[off:]
		if end >= 0 {
			line, next = body[off:off+end], off+end+1
		}
		l := bytes.TrimRight(line, " \t\r")
		if bytes.HasPrefix(l, delim) {
			tail := l[len(delim):]
			if len(tail) == 0 || bytes.Equal(tail, []byte("--")) {
				if start >= 0 {
					p := body[start:off]
					p = bytes.TrimSuffix(p, []byte("\n"))
					p = bytes.TrimSuffix(p, []byte("\r"))
					parts = append(parts, p)
				}
				if len(tail) == 2 {
					if next < len(body) {
						outside.Write(body[next:])
					}
					return parts, outside.String()
				}
				start = next
				if start > len(body) {
					start = len(body)
				}
				off = next
				continue
			}
		}
		if start < 0 {
			outside.Write(line)
			outside.WriteByte('\n')
		}
		off = next
	}
	if start >= 0 && start < len(body) {
		parts = append(parts, body[start:])
	}
	return parts, outside.String()
}

// decodeBody removes the transfer encoding and converts to UTF-8.
func decodeBody(fields []field, body []byte, cs string) string {
	var r io.Reader = bytes.NewReader(body)
	if vs := header(fields, "Content-Transfer-Encoding"); len(vs) > 0 {
		switch strings.ToLower(strings.TrimSpace(vs[0])) {
		case "quoted-printable":
			r = quotedprintable.NewReader(r)
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, &base64Filter{r: r})
		}
	}
	b, _ := io.ReadAll(r)
	if cs != "" && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		if cr, err := charset.Reader(cs, bytes.NewReader(b)); err == nil {
			if c, err := io.ReadAll(cr); err == nil {
				b = c
			}
		}
	}
	if !utf8.Valid(b) {
		b = bytes.ToValidUTF8(b, []byte("\uFFFD"))
	}
	return string(b)
}

// base64Filter drops what is not base64 alphabet (line ends, spaces), as
// RFC 2045 section 6.8 tells decoders to.
type base64Filter struct{ r io.Reader }

func (f *base64Filter) Read(p []byte) (int, error) {
	for {
		n, err := f.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// ReturnPath is the address of the message's Return-Path field (the
// envelope sender a delivery recorded), "" when it is <> or missing.
func (m *Message) ReturnPath() string {
	vs := header(m.fields, "Return-Path")
	if len(vs) == 0 {
		return ""
	}
	for _, it := range parseAddressList(vs[0]) {
		if it.valid {
			return it.addr.local + "@" + it.addr.domain
		}
	}
	return ""
}
