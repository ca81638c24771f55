package password

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// SHA-crypt ($5$ and $6$) as specified by Ulrich Drepper in "Unix crypt
// using SHA-256 and SHA-512" and implemented by glibc and libxcrypt; this
// is what Dovecot's {SHA256-CRYPT}/{SHA512-CRYPT} and slappasswd's
// -c '$6$%.16s' write. golang.org/x/crypto has no implementation.

// shaCrypt describes one of the two variants.
type shaCrypt struct {
	prefix  string // "$5$" or "$6$"
	newHash func() hash.Hash
	// groups and stride describe the byte order of the final encoding
	// (see encode).
	groups  int // full three-byte groups
	stride  int // index step between groups
	hashLen int // encoded length
}

var (
	sha256Crypt = shaCrypt{prefix: "$5$", newHash: sha256.New, groups: 10, stride: 21, hashLen: 43}
	sha512Crypt = shaCrypt{prefix: "$6$", newHash: sha512.New, groups: 21, stride: 22, hashLen: 86}
)

const (
	shaCryptMaxSalt       = 16
	shaCryptDefaultRounds = 5000
	shaCryptMinRounds     = 1000
	cryptAlphabet         = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// shaCryptParams is a parsed $5$/$6$ string.
type shaCryptParams struct {
	rounds int
	salt   string
	hash   string // encoded, hashLen characters
}

// parse reads "$6$[rounds=N$]salt$hash". It is strict where glibc would
// silently produce a different string (a salt longer than 16 characters),
// so that what verifies here is what verifies with crypt(3).
func (c shaCrypt) parse(l *limits, s string) (shaCryptParams, error) {
	p := shaCryptParams{rounds: shaCryptDefaultRounds}
	rest, ok := strings.CutPrefix(s, c.prefix)
	if !ok {
		return p, fmt.Errorf("%w: want %s prefix", ErrMalformed, c.prefix)
	}
	if r, ok := strings.CutPrefix(rest, "rounds="); ok {
		num, after, ok := strings.Cut(r, "$")
		if !ok || num == "" || len(num) > 10 || !isDigits(num) {
			return p, fmt.Errorf("%w: bad rounds=", ErrMalformed)
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			return p, fmt.Errorf("%w: bad rounds=: %w", ErrMalformed, err)
		}
		if n > l.shaCryptRounds {
			return p, fmt.Errorf("%w: rounds=%d, limit %d", ErrTooCostly, n, l.shaCryptRounds)
		}
		// The specification raises a count below the minimum to it.
		p.rounds = max(n, shaCryptMinRounds)
		rest = after
	}
	salt, h, ok := strings.Cut(rest, "$")
	if !ok {
		return p, fmt.Errorf("%w: no hash after the salt", ErrMalformed)
	}
	if len(salt) > shaCryptMaxSalt {
		return p, fmt.Errorf("%w: salt longer than %d characters", ErrMalformed, shaCryptMaxSalt)
	}
	for i := 0; i < len(salt); i++ {
		if salt[i] <= ' ' || salt[i] > '~' {
			return p, fmt.Errorf("%w: control or non-ASCII byte in salt", ErrMalformed)
		}
	}
	if len(h) != c.hashLen || !inAlphabet(h, cryptAlphabet) {
		return p, fmt.Errorf("%w: hash is not %d crypt base64 characters", ErrMalformed, c.hashLen)
	}
	p.salt, p.hash = salt, h
	return p, nil
}

func (c shaCrypt) match(p shaCryptParams) matcher {
	want := []byte(p.hash)
	return func(plain string) bool {
		got := c.encode(c.sum([]byte(plain), []byte(p.salt), p.rounds))
		return subtle.ConstantTimeCompare(got, want) == 1
	}
}

func parseShaCrypt(c shaCrypt) func(*limits, string, string) (matcher, error) {
	return func(l *limits, body, _ string) (matcher, error) {
		p, err := c.parse(l, body)
		if err != nil {
			return nil, err
		}
		return c.match(p), nil
	}
}

// hashShaCrypt writes the default 5000 rounds (no rounds= field), which
// every crypt(3) and Dovecot reads, with a full 16-character salt.
func hashShaCrypt(c shaCrypt) func(string) (string, error) {
	return func(plain string) (string, error) {
		b, err := randomBytes(shaCryptMaxSalt)
		if err != nil {
			return "", err
		}
		for i := range b {
			// 256 is a multiple of 64, so this stays uniform.
			b[i] = cryptAlphabet[b[i]&63]
		}
		salt := string(b)
		h := c.encode(c.sum([]byte(plain), b, shaCryptDefaultRounds))
		return c.prefix + salt + "$" + string(h), nil
	}
}

// sum is the algorithm of the specification, steps 1 to 21.
func (c shaCrypt) sum(key, salt []byte, rounds int) []byte {
	h := c.newHash()
	size := h.Size()

	// Digest B = H(key salt key).
	h.Write(key)
	h.Write(salt)
	h.Write(key)
	b := h.Sum(nil)

	// Digest A = H(key salt, B repeated to len(key), then B or key for each
	// bit of len(key) from the lowest).
	h.Reset()
	h.Write(key)
	h.Write(salt)
	n := len(key)
	for ; n > size; n -= size {
		h.Write(b)
	}
	h.Write(b[:n])
	for n = len(key); n > 0; n >>= 1 {
		if n&1 != 0 {
			h.Write(b)
		} else {
			h.Write(key)
		}
	}
	a := h.Sum(nil)

	// P: H(key repeated len(key) times), stretched to len(key).
	h.Reset()
	for range len(key) {
		h.Write(key)
	}
	p := stretch(h.Sum(nil), len(key))

	// S: H(salt repeated 16+A[0] times), stretched to len(salt).
	h.Reset()
	for range 16 + int(a[0]) {
		h.Write(salt)
	}
	s := stretch(h.Sum(nil), len(salt))

	// The rounds: alternate C and P, mix in S and P on rounds not divisible
	// by 3 and 7.
	sum := a
	for i := range rounds {
		h.Reset()
		if i&1 != 0 {
			h.Write(p)
		} else {
			h.Write(sum)
		}
		if i%3 != 0 {
			h.Write(s)
		}
		if i%7 != 0 {
			h.Write(p)
		}
		if i&1 != 0 {
			h.Write(sum)
		} else {
			h.Write(p)
		}
		sum = h.Sum(sum[:0])
	}
	return sum
}

// stretch repeats digest to n bytes.
func stretch(digest []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out)+len(digest) <= n {
		out = append(out, digest...)
	}
	return append(out, digest[:n-len(out)]...)
}

// encode is the specification's final step: the digest bytes are taken in
// groups of three, in a fixed interleaved order (group i starts at
// i*stride modulo the group span, its other two bytes one and two thirds
// of the span later), and written four crypt base64 characters per group,
// least significant six bits first.
func (c shaCrypt) encode(d []byte) []byte {
	out := make([]byte, 0, c.hashLen)
	put := func(b2, b1, b0 byte, n int) {
		w := uint32(b2)<<16 | uint32(b1)<<8 | uint32(b0)
		for range n {
			out = append(out, cryptAlphabet[w&63])
			w >>= 6
		}
	}
	span := 3 * c.groups
	third := c.groups
	for i := range c.groups {
		j := i * c.stride % span
		put(d[j], d[(j+third)%span], d[(j+2*third)%span], 4)
	}
	if len(d) == 32 {
		put(0, d[31], d[30], 3)
	} else {
		put(0, 0, d[63], 2)
	}
	return out
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func inAlphabet(s, alphabet string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(alphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}
