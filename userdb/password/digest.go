package password

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// The digest schemes as slappasswd writes them: {SHA}, {SHA256}, {SHA512}
// are base64(H(password)); the salted {SSHA*} are base64(H(password||salt)
// || salt). The salt is whatever follows the digest, so every salt length
// (slappasswd: 4 bytes, others 8 or 16) verifies.

// digestSaltLen is the salt Hash writes: longer than slappasswd's 4 bytes,
// which is short enough for precomputation over a big directory.
const digestSaltLen = 8

func parseDigest(newHash func() hash.Hash, salted bool) func(*limits, string, string) (matcher, error) {
	return func(_ *limits, body, enc string) (matcher, error) {
		size := newHash().Size()
		def := "B64"
		// Dovecot accepts an unsalted digest in hex without a suffix and
		// tells the two apart by length; do the same.
		if !salted && enc == "" && len(body) == 2*size && isHex(body) {
			def = "HEX"
		}
		raw, err := decodeBody(body, enc, def)
		if err != nil {
			return nil, err
		}
		switch {
		case len(raw) == 0:
			return nil, fmt.Errorf("%w: empty digest", ErrMalformed)
		case salted && len(raw) < size:
			return nil, fmt.Errorf("%w: %d bytes, want a %d-byte digest and a salt", ErrMalformed, len(raw), size)
		case !salted && len(raw) != size:
			return nil, fmt.Errorf("%w: %d bytes, want a %d-byte digest", ErrMalformed, len(raw), size)
		}
		want, salt := raw[:size], raw[size:]
		return func(plain string) bool {
			h := newHash()
			h.Write([]byte(plain))
			h.Write(salt)
			return subtle.ConstantTimeCompare(h.Sum(nil), want) == 1
		}, nil
	}
}

func hashDigest(newHash func() hash.Hash) func(string) (string, error) {
	return func(plain string) (string, error) {
		salt, err := randomBytes(digestSaltLen)
		if err != nil {
			return "", err
		}
		h := newHash()
		h.Write([]byte(plain))
		h.Write(salt)
		return base64.StdEncoding.EncodeToString(append(h.Sum(nil), salt...)), nil
	}
}

// decodeBody decodes a stored body by its Dovecot encoding suffix, or by
// def when there is none ("" means the body is used as it is).
func decodeBody(body, enc, def string) ([]byte, error) {
	if enc == "" {
		enc = def
	}
	switch enc {
	case "":
		return []byte(body), nil
	case "HEX":
		b, err := hex.DecodeString(body)
		if err != nil {
			return nil, fmt.Errorf("%w: bad hex: %w", ErrMalformed, err)
		}
		return b, nil
	case "B64", "BASE64":
		return decodeBase64(body)
	}
	return nil, fmt.Errorf("%w: encoding %q", ErrUnknownScheme, "."+enc)
}

// decodeBase64 takes standard base64 with or without padding. The
// standard library skips CR and LF inside base64; a stored hash has no
// business containing them, so they are refused instead.
func decodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%w: line break in base64", ErrMalformed)
	}
	enc := base64.StdEncoding
	if len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: bad base64: %w", ErrMalformed, err)
	}
	return b, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
