package sortthread

import (
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/unicode/norm"
)

// casemap folds s the way i;unicode-casemap (RFC 5051) compares: every
// character to its titlecase form, then decomposed (NFKD). Dovecot's
// uni_utf8_to_decomposed_titlecase does the same with its own tables;
// invalid UTF-8 becomes U+FFFD. ASCII, the common case, only needs upper
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
	for _, r := range s {
		sb.WriteRune(unicode.ToTitle(r))
	}
	return norm.NFKD.String(sb.String())
}

// decodeWords turns RFC 2047 encoded-words into UTF-8, dropping the white
// space between two adjacent words. A header whose words cannot all be
// decoded (unknown charset) is kept as it came, as Dovecot does with the
// words it cannot convert.
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	d := mime.WordDecoder{CharsetReader: charset.Reader}
	out, err := d.DecodeHeader(s)
	if err != nil {
		return s
	}
	return out
}
