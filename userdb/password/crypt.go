package password

import (
	"fmt"
	"strings"
)

// {CRYPT} holds whatever crypt(3) wrote; OpenLDAP directories are full of
// them, often without any {SCHEME} prefix at all. Only the modern prefixes
// are accepted: MD5-crypt ($1$) and traditional DES are too weak to keep
// honouring silently and are reported as unknown.

// isCryptString reports whether a value without a {SCHEME} prefix is a crypt
// string Verify will accept as {CRYPT}.
func isCryptString(s string) bool {
	for _, p := range []string{"$5$", "$6$", "$2a$", "$2b$", "$2y$"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func parseCrypt(l *limits, body, _ string) (matcher, error) {
	switch {
	case strings.HasPrefix(body, "$5$"):
		return parseShaCrypt(sha256Crypt)(l, body, "")
	case strings.HasPrefix(body, "$6$"):
		return parseShaCrypt(sha512Crypt)(l, body, "")
	case strings.HasPrefix(body, "$2"):
		return parseBcrypt(l, body, "")
	case body == "":
		return nil, fmt.Errorf("%w: empty crypt string", ErrMalformed)
	case strings.HasPrefix(body, "$"):
		id, _, _ := strings.Cut(body[1:], "$")
		if len(id) > 8 {
			id = id[:8]
		}
		return nil, fmt.Errorf("%w: crypt method %q", ErrUnknownScheme, "$"+id+"$")
	}
	return nil, fmt.Errorf("%w: traditional DES crypt", ErrUnknownScheme)
}
