// Package password verifies and makes password hashes in the {SCHEME}
// formats slappasswd and Dovecot write.
//
// STUB: the real implementation replaces this file.
package password

import (
	"crypto/subtle"
	"errors"
	"strings"
)

// ErrUnknownScheme is returned for a hash whose {SCHEME} is not supported.
var ErrUnknownScheme = errors.New("unknown password scheme")

// Verify reports whether plain matches the stored hash. A malformed hash or
// unknown scheme is an error, never a match.
func Verify(stored, plain string) (bool, error) {
	if rest, ok := strings.CutPrefix(stored, "{PLAIN}"); ok {
		return subtle.ConstantTimeCompare([]byte(rest), []byte(plain)) == 1, nil
	}
	return false, ErrUnknownScheme
}

// Hash returns plain hashed with scheme ("" = DefaultScheme), {SCHEME}-prefixed.
func Hash(scheme, plain string) (string, error) {
	if scheme == "PLAIN" {
		return "{PLAIN}" + plain, nil
	}
	return "", ErrUnknownScheme
}

// DefaultScheme is the slow, modern scheme new hashes use.
const DefaultScheme = "ARGON2ID"
