// Package utf7 converts mailbox names between UTF-8 and IMAP's modified
// UTF-7 (RFC 3501 section 5.1.3), the form names take on the wire unless
// the client enabled UTF8=ACCEPT.
//
// Printable US-ASCII other than "&" stands for itself, "&" is "&-", and
// every other run of characters is shifted: "&", its UTF-16BE code units
// in base64 with "," for "/" and no padding, "-". Decode accepts only
// that canonical form, so that one name has one spelling and
// Encode(Decode(x)) == x: no printable ASCII inside a shift, no two
// shifts back to back, no shift left open, no bare "&", no octet outside
// printable ASCII, no base64 that leaves a partial code unit or non-zero
// bits, and no UTF-16 surrogate out of its pair.
package utf7

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// ErrInvalid is matched (errors.Is) by every error Decode and Encode
// return.
var ErrInvalid = errors.New("utf7: invalid modified UTF-7")

// b64 is RFC 3501's modified base64; Strict rejects non-zero bits left
// over after the last code unit.
var b64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").
	WithPadding(base64.NoPadding).Strict()

func printable(r rune) bool { return r >= 0x20 && r <= 0x7e }

// Encode returns name in modified UTF-7. name must be valid UTF-8.
func Encode(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: name %q is not UTF-8", ErrInvalid, name)
	}
	var b strings.Builder
	var units []uint16
	flush := func() {
		if len(units) == 0 {
			return
		}
		raw := make([]byte, 2*len(units))
		for i, u := range units {
			raw[2*i], raw[2*i+1] = byte(u>>8), byte(u)
		}
		b.WriteByte('&')
		b.WriteString(b64.EncodeToString(raw))
		b.WriteByte('-')
		units = units[:0]
	}
	for _, r := range name {
		switch {
		case r == '&':
			flush()
			b.WriteString("&-")
		case printable(r):
			flush()
			b.WriteRune(r)
		default:
			units = utf16.AppendRune(units, r)
		}
	}
	flush()
	return b.String(), nil
}

// Decode returns the UTF-8 name that the canonical modified UTF-7 s
// stands for.
func Decode(s string) (string, error) {
	for i := 0; i < len(s); i++ {
		if !printable(rune(s[i])) {
			return "", fmt.Errorf("%w: octet 0x%02x at %d", ErrInvalid, s[i], i)
		}
	}
	var b strings.Builder
	shifted := false // the previous character ended a shift
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '&' {
			b.WriteByte(c)
			shifted = false
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", fmt.Errorf("%w: shift at %d is not closed by \"-\"", ErrInvalid, i)
		}
		run := s[i+1 : i+1+end]
		if run == "" {
			b.WriteByte('&')
			shifted = false
			i++
			continue
		}
		if shifted {
			return "", fmt.Errorf("%w: shift at %d follows another", ErrInvalid, i)
		}
		if err := decodeRun(&b, run); err != nil {
			return "", fmt.Errorf("%w: shift at %d: %s", ErrInvalid, i, err)
		}
		shifted = true
		i += 1 + end
	}
	return b.String(), nil
}

// decodeRun appends the characters that one shift's base64 stands for.
func decodeRun(b *strings.Builder, run string) error {
	raw, err := b64.DecodeString(run)
	if err != nil {
		return fmt.Errorf("bad base64 %q", run)
	}
	if len(raw)%2 != 0 {
		return fmt.Errorf("base64 %q ends inside a UTF-16 code unit", run)
	}
	for i := 0; i < len(raw); i += 2 {
		r := rune(raw[i])<<8 | rune(raw[i+1])
		switch {
		case utf16.IsSurrogate(r):
			if r >= 0xdc00 || i+3 >= len(raw) {
				return fmt.Errorf("lone UTF-16 surrogate 0x%04x", r)
			}
			hi, lo := r, rune(raw[i+2])<<8|rune(raw[i+3])
			if r = utf16.DecodeRune(hi, lo); r == utf8.RuneError {
				return fmt.Errorf("UTF-16 surrogate 0x%04x not followed by a low one", hi)
			}
			i += 2
		case printable(r):
			return fmt.Errorf("printable %q must stand for itself", r)
		}
		b.WriteRune(r)
	}
	return nil
}
