package sortthread

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/unicode/norm"
)

// casemap folds s the way Dovecot approximates i;unicode-casemap (RFC
// 5051): every character to its titlecase form, then decomposed. RFC 5051
// asks for the compatibility decomposition (NFKD); Dovecot's tables, as
// its answers show, split "ﬁ" into "fi" (not titlecased again) but leave
// "ǅ" whole. The rule that matches: a compatibility decomposition when it
// is all ASCII, else the canonical one (NFD). Invalid UTF-8 becomes
// U+FFFD. ASCII, the common case, only needs upper
// casing and costs no allocation when it is already upper case.
func casemap(s string) string {
	ascii, upper := true, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		if 'a' <= c && c <= 'z' {
			upper = false
		}
	}
	if ascii {
		if upper {
			return s
		}
		b := make([]byte, len(s))
		for i := 0; i < len(s); i++ {
			c := s[i]
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			b[i] = c
		}
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(s) + 8)
	var buf [utf8.UTFMax]byte
	for _, r := range s {
		r = unicode.ToTitle(r)
		if r < utf8.RuneSelf {
			sb.WriteByte(byte(r))
			continue
		}
		ch := buf[:utf8.EncodeRune(buf[:], r)]
		if k := norm.NFKD.Bytes(ch); isASCII(k) {
			sb.Write(k)
			continue
		}
		sb.Write(norm.NFD.Bytes(ch))
	}
	return sb.String()
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// decodeWords turns RFC 2047 encoded-words into UTF-8; see decodeHeader.
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	var b strings.Builder
	decodeHeader(s, func(piece string, _ bool) { b.WriteString(piece) })
	return b.String()
}

// decodeFold is decodeWords then casemap, as Dovecot decodes a Subject:
// text from an encoded-word in a charset it does not know is kept as it
// is, not folded.
func decodeFold(s string) string {
	if !strings.Contains(s, "=?") {
		return casemap(s)
	}
	var b strings.Builder
	decodeHeader(s, func(piece string, fold bool) {
		if fold {
			piece = casemap(piece)
		}
		b.WriteString(piece)
	})
	return b.String()
}

// decodeHeader splits a header value into plain text and decoded
// encoded-words, dropping the white space between two adjacent words. A
// malformed encoded-word is plain text. fold is false for the text of a
// word whose charset is unknown.
func decodeHeader(s string, emit func(piece string, fold bool)) {
	lastWord := false // the previous piece was an encoded-word
	for len(s) > 0 {
		i := strings.Index(s, "=?")
		if i < 0 {
			emit(validUTF8(s), true)
			return
		}
		text, fold, n, ok := encodedWord(s[i:])
		if !ok {
			emit(validUTF8(s[:i+2]), true)
			s = s[i+2:]
			lastWord = false
			continue
		}
		if pre := s[:i]; !(lastWord && strings.Trim(pre, " \t\r\n") == "") {
			emit(validUTF8(pre), true)
		}
		emit(text, fold)
		lastWord = true
		s = s[i+n:]
	}
}

// encodedWord decodes the "=?charset?enc?text?=" at the start of s and
// returns its text and length.
func encodedWord(s string) (text string, fold bool, n int, ok bool) {
	rest := s[2:]
	q := strings.IndexByte(rest, '?')
	if q <= 0 || q+3 > len(rest) || rest[q+2] != '?' {
		return "", false, 0, false
	}
	cs, enc := rest[:q], rest[q+1]
	body := rest[q+3:]
	end := strings.Index(body, "?=")
	if end < 0 {
		return "", false, 0, false
	}
	data := body[:end]
	n = 2 + q + 3 + end + 2
	if strings.ContainsAny(data, " \t\r\n") {
		return "", false, 0, false
	}
	if j := strings.IndexByte(cs, '*'); j >= 0 { // RFC 2231 language
		cs = cs[:j]
	}
	var raw []byte
	switch enc {
	case 'B', 'b':
		var err error
		raw, err = base64.StdEncoding.DecodeString(data)
		if err != nil {
			raw, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(data, "="))
			if err != nil {
				return "", false, 0, false
			}
		}
	case 'Q', 'q':
		raw = make([]byte, 0, len(data))
		for i := 0; i < len(data); i++ {
			c := data[i]
			switch {
			case c == '_':
				c = ' '
			case c == '=' && i+2 < len(data) && isHex(data[i+1]) && isHex(data[i+2]):
				c = unhex(data[i+1])<<4 | unhex(data[i+2])
				i += 2
			}
			raw = append(raw, c)
		}
	default:
		return "", false, 0, false
	}
	if strings.EqualFold(cs, "utf-8") || strings.EqualFold(cs, "us-ascii") {
		return validUTF8(string(raw)), true, n, true
	}
	r, err := charset.Reader(cs, bytes.NewReader(raw))
	if err != nil {
		return validUTF8(string(raw)), false, n, true
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return validUTF8(string(raw)), false, n, true
	}
	return validUTF8(string(out)), true, n, true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// validUTF8 replaces invalid UTF-8 sequences with U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
