// Package password verifies and makes password hashes in the {SCHEME}
// formats that slappasswd and Dovecot write, so an existing OpenLDAP or SQL
// directory can be pointed at vmaild without rehashing anyone's password.
//
// A stored hash is "{SCHEME}body". Verify understands:
//
//	{SSHA} {SSHA256} {SSHA512}         base64(digest || salt), any salt length
//	{SHA} {SHA1} {SHA256} {SHA512}     unsalted digests (verification only)
//	{SHA256-CRYPT} {SHA512-CRYPT}      $5$ / $6$ SHA-crypt, with rounds=N
//	{BLF-CRYPT}                        bcrypt $2a$ / $2b$ / $2y$
//	{ARGON2I} {ARGON2ID}               PHC strings ($argon2id$v=19$m=…,t=…,p=…$salt$hash)
//	{CRYPT}                            a $5$ / $6$ / $2?$ crypt string, by its prefix
//	{PLAIN} {CLEARTEXT} {CLEAR}        the password itself
//
// Scheme names are case-insensitive. The digest schemes and PLAIN also take
// Dovecot's encoding suffixes (.HEX, .B64, .BASE64). A bare crypt string
// without a {SCHEME} prefix ($5$, $6$, $2a$, $2b$, $2y$) is verified as
// {CRYPT}, because that is what OpenLDAP directories often hold; anything
// else without a prefix is an error, never a match.
//
// Verify is exposed to whatever a remote client types, so it refuses absurd
// work before doing any: passwords longer than MaxPasswordLen never match,
// and the cost parameters a stored hash asks for are capped (see Caps and
// ErrTooCostly). Caps.Verify also asks the context's Admission before the
// expensive part, which is how the login service bounds and counts
// verifications. Every comparison of secret material is constant-time.
package password

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
)

// DefaultScheme is the scheme Hash uses when none is named: Argon2id, the
// current recommendation for password storage (RFC 9106, OWASP).
const DefaultScheme = "ARGON2ID"

// MaxPasswordLen is the longest password Verify will look at. Longer input
// is a client trying to make us hash megabytes (SHA-crypt work grows with
// the square of the password length), not a person logging in.
const MaxPasswordLen = 4096

// maxStoredLen bounds the stored value: a {PLAIN} password of MaxPasswordLen
// plus room for a prefix and encoding. Nothing legitimate is longer.
const maxStoredLen = 2*MaxPasswordLen + 64

var (
	// ErrUnknownScheme is returned for a hash whose {SCHEME} (or crypt
	// prefix, or algorithm variant) is not supported, and for a stored
	// value without any recognisable scheme.
	ErrUnknownScheme = errors.New("unknown password scheme")
	// ErrMalformed is returned for a stored hash that claims a known scheme
	// but cannot be parsed: bad base64, wrong lengths, broken parameters.
	ErrMalformed = errors.New("malformed password hash")
	// ErrTooCostly is returned for a stored hash whose cost parameters
	// (SHA-crypt rounds, bcrypt cost, argon2 memory and passes) exceed what
	// one login may spend. Such a hash is an attack on the server or an
	// administrator's mistake; either way it is not verified.
	ErrTooCostly = errors.New("password hash cost exceeds limit")
	// ErrVerifyOnly is returned by Hash for a scheme Verify accepts but that
	// is too weak to write new hashes in (the unsalted digests).
	ErrVerifyOnly = errors.New("password scheme is accepted for verification only")
	// ErrPasswordTooLong is returned by Hash for a password longer than
	// MaxPasswordLen, or longer than the scheme can use (bcrypt: 72 bytes).
	ErrPasswordTooLong = errors.New("password too long")
	// ErrEmptyPassword is returned by Hash for an empty password: an empty
	// password is never a credential (Verify never matches one either).
	ErrEmptyPassword = errors.New("empty password")
)

// limits caps the work a stored hash may ask for. Caps makes one from the
// configuration; tests and fuzzing use smaller ones.
type limits struct {
	shaCryptRounds int    // SHA-crypt rounds=N
	bcryptCost     int    // bcrypt log2 rounds
	argonMemory    uint32 // KiB
	argonTime      uint32 // passes
	argonWork      uint64 // memory × passes, KiB
	argonThreads   uint32 // lanes
}

// Verify reports whether plain matches the stored hash, under the default
// Caps and without any Admission. A malformed hash, an unknown scheme or a
// hash that asks for too much work is an error and never a match. An
// empty password or one longer than MaxPasswordLen never matches and
// costs nothing.
func Verify(stored, plain string) (bool, error) {
	return Caps{}.Verify(context.Background(), stored, plain)
}

// verify is Verify under l, without an Admission; tests and fuzzing use it.
func (l *limits) verify(stored, plain string) (bool, error) {
	match, err := l.prepare(stored, plain)
	if err != nil || match == nil {
		return false, err
	}
	return match(plain), nil
}

// prepare parses stored under l and returns the matcher to run, or nil
// when plain cannot match whatever the hash (empty or overlong).
func (l *limits) prepare(stored, plain string) (matcher, error) {
	if len(stored) > maxStoredLen {
		return nil, fmt.Errorf("%w: stored value longer than %d bytes", ErrMalformed, maxStoredLen)
	}
	name, enc, body, err := split(stored)
	if err != nil {
		return nil, err
	}
	s, ok := lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownScheme, "{"+name+"}")
	}
	if enc != "" && !s.encodings {
		return nil, fmt.Errorf("%w: %q: scheme takes no encoding suffix", ErrUnknownScheme, "{"+name+"."+enc+"}")
	}
	// The stored hash is parsed and its cost checked before the password
	// is looked at, so a broken directory entry is reported whatever the
	// client typed, and a hash over the caps costs nothing.
	match, err := s.parse(l, body, enc)
	if err != nil {
		return nil, fmt.Errorf("{%s}: %w", name, err)
	}
	if plain == "" || len(plain) > MaxPasswordLen {
		return nil, nil
	}
	return match, nil
}

// Hash returns plain hashed with scheme ("" means DefaultScheme), with its
// {SCHEME} prefix, ready to store. Salts come from crypto/rand.
func Hash(scheme, plain string) (string, error) {
	if scheme == "" {
		scheme = DefaultScheme
	}
	name := strings.ToUpper(scheme)
	s, ok := lookup(name)
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrUnknownScheme, scheme)
	}
	if s.hash == nil {
		return "", fmt.Errorf("%w: %s", ErrVerifyOnly, name)
	}
	if plain == "" {
		return "", ErrEmptyPassword
	}
	if len(plain) > MaxPasswordLen {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrPasswordTooLong, MaxPasswordLen)
	}
	body, err := s.hash(plain)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", name, err)
	}
	return "{" + name + "}" + body, nil
}

// Schemes lists the schemes Hash can write, for configuration checks and
// the admin command's help. Verify additionally accepts the unsalted SHA,
// SHA1, SHA256 and SHA512.
func Schemes() []string {
	return []string{
		"ARGON2I", "ARGON2ID", "BLF-CRYPT", "CLEAR", "CLEARTEXT", "CRYPT", "PLAIN",
		"SHA256-CRYPT", "SHA512-CRYPT", "SSHA", "SSHA256", "SSHA512",
	}
}

// Scheme returns the upper-case scheme name of a stored hash (without an
// encoding suffix), "CRYPT" for a bare crypt string, or "" when the value
// has no recognisable scheme. It does not check that the scheme is
// supported; callers use it to decide whether to rehash on login.
func Scheme(stored string) string {
	name, _, _, err := split(stored)
	if err != nil {
		return ""
	}
	return name
}

// split takes "{NAME.ENC}body" apart. A bare crypt string is reported as
// CRYPT with the whole value as its body.
func split(stored string) (name, enc, body string, err error) {
	if !strings.HasPrefix(stored, "{") {
		if isCryptString(stored) {
			return "CRYPT", "", stored, nil
		}
		if stored == "" {
			return "", "", "", fmt.Errorf("%w: empty stored password", ErrUnknownScheme)
		}
		return "", "", "", fmt.Errorf("%w: no {SCHEME} prefix", ErrUnknownScheme)
	}
	end := strings.IndexByte(stored, '}')
	if end < 0 || end > 32 {
		return "", "", "", fmt.Errorf("%w: unterminated or overlong {SCHEME}", ErrMalformed)
	}
	name, body = strings.ToUpper(stored[1:end]), stored[end+1:]
	if name, enc, ok := strings.Cut(name, "."); ok {
		return name, enc, body, nil
	}
	return name, "", body, nil
}

// scheme is one supported {SCHEME}: how to parse a stored body into a
// matcher and, unless it is verification-only, how to make a new body.
type scheme struct {
	parse     func(l *limits, body, enc string) (matcher, error)
	hash      func(plain string) (string, error)
	encodings bool // takes Dovecot's .HEX/.B64 suffixes
}

// matcher does the expensive part of a verification: hash plain with the
// stored parameters and compare in constant time.
type matcher func(plain string) bool

// lookup is a switch rather than a map so the table cannot be changed at
// run time.
func lookup(name string) (scheme, bool) {
	switch name {
	case "SHA", "SHA1":
		return scheme{parse: parseDigest(sha1.New, false), encodings: true}, true
	case "SHA256":
		return scheme{parse: parseDigest(sha256.New, false), encodings: true}, true
	case "SHA512":
		return scheme{parse: parseDigest(sha512.New, false), encodings: true}, true
	case "SSHA":
		return scheme{parseDigest(sha1.New, true), hashDigest(sha1.New), true}, true
	case "SSHA256":
		return scheme{parseDigest(sha256.New, true), hashDigest(sha256.New), true}, true
	case "SSHA512":
		return scheme{parseDigest(sha512.New, true), hashDigest(sha512.New), true}, true
	case "SHA256-CRYPT":
		return scheme{parse: parseShaCrypt(sha256Crypt), hash: hashShaCrypt(sha256Crypt)}, true
	case "SHA512-CRYPT":
		return scheme{parse: parseShaCrypt(sha512Crypt), hash: hashShaCrypt(sha512Crypt)}, true
	case "BLF-CRYPT":
		return scheme{parse: parseBcrypt, hash: hashBcrypt}, true
	case "ARGON2I":
		return scheme{parse: parseArgon2, hash: hashArgon2(argon2i)}, true
	case "ARGON2ID":
		return scheme{parse: parseArgon2, hash: hashArgon2(argon2id)}, true
	case "CRYPT":
		// New {CRYPT} values are SHA512-CRYPT, what `slappasswd -h {CRYPT}
		// -c '$6$%.16s'` writes and what slapd's own crypt(3) checks.
		return scheme{parse: parseCrypt, hash: hashShaCrypt(sha512Crypt)}, true
	case "PLAIN", "CLEARTEXT", "CLEAR":
		return scheme{parsePlain, hashPlain, true}, true
	}
	return scheme{}, false
}

// parsePlain compares digests of both sides so that neither the content
// nor the length of the stored password leaks through timing.
func parsePlain(_ *limits, body, enc string) (matcher, error) {
	stored, err := decodeBody(body, enc, "")
	if err != nil {
		return nil, err
	}
	want := sha256.Sum256(stored)
	return func(plain string) bool {
		got := sha256.Sum256([]byte(plain))
		return subtle.ConstantTimeCompare(want[:], got[:]) == 1
	}, nil
}

func hashPlain(plain string) (string, error) { return plain, nil }

// randomBytes reads n bytes for a salt.
func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("random salt: %w", err)
	}
	return b, nil
}
