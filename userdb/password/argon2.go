package password

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2 in the PHC string form that Dovecot (through libsodium or
// libargon2) and the argon2 command line tool write:
//
//	$argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash>
//
// with salt and hash in standard base64 without padding. The variant comes
// from the string itself, as libsodium's verification does, so an
// {ARGON2I} prefix over an $argon2id$ string still verifies.

type argon2Variant string

const (
	argon2i  argon2Variant = "argon2i"
	argon2id argon2Variant = "argon2id"
)

// The parameters Hash writes are OWASP's minimum for Argon2id (19 MiB,
// 2 passes, 1 lane) rather than Dovecot's 64 MiB × 3: every concurrent
// login holds the full memory while it verifies, and a burst of a hundred
// logins at 64 MiB each would take 6 GiB from a mail server. 19 MiB keeps
// that at about 2 GiB, and the login service bounds how many run at once.
// Existing hashes keep whatever parameters they were made with, up to Caps.
const (
	argon2DefaultMemory  = 19456 // KiB
	argon2DefaultTime    = 2
	argon2DefaultThreads = 1
	argon2SaltLen        = 16
	argon2KeyLen         = 32
)

// Bounds on the salt and hash lengths a stored string may have: the
// reference implementation's minimums (8-byte salt, 4-byte tag) and a
// ceiling far above anything a tool writes.
const (
	argon2MinSalt = 8
	argon2MinKey  = 4
	argon2MaxLen  = 1024
)

// argon2Params is a parsed PHC string.
type argon2Params struct {
	variant argon2Variant
	memory  uint32
	time    uint32
	threads uint32
	salt    []byte
	key     []byte
}

func parseArgon2(l *limits, body, _ string) (matcher, error) {
	p, err := l.parseArgon2(body)
	if err != nil {
		return nil, err
	}
	return func(plain string) bool {
		got := p.derive([]byte(plain))
		return subtle.ConstantTimeCompare(got, p.key) == 1
	}, nil
}

func (p *argon2Params) derive(plain []byte) []byte {
	f := argon2.IDKey
	if p.variant == argon2i {
		f = argon2.Key
	}
	return f(plain, p.salt, p.time, p.memory, uint8(p.threads), uint32(len(p.key)))
}

func (l *limits) parseArgon2(s string) (*argon2Params, error) {
	fields := strings.Split(s, "$")
	if len(fields) < 5 || len(fields) > 6 || fields[0] != "" {
		return nil, fmt.Errorf("%w: not a $argon2…$ PHC string", ErrMalformed)
	}
	p := &argon2Params{variant: argon2Variant(fields[1])}
	switch p.variant {
	case argon2i, argon2id:
	case "argon2d":
		return nil, fmt.Errorf("%w: argon2d (not meant for passwords)", ErrUnknownScheme)
	default:
		return nil, fmt.Errorf("%w: not a $argon2…$ PHC string", ErrMalformed)
	}
	if len(fields) == 5 {
		if strings.HasPrefix(fields[2], "m=") {
			// No v= field is version 1.0 (0x10), which x/crypto does not
			// compute.
			return nil, fmt.Errorf("%w: argon2 version 16", ErrUnknownScheme)
		}
		return nil, fmt.Errorf("%w: argon2 string truncated", ErrMalformed)
	}
	if fields[2] != "v=19" {
		if v, ok := strings.CutPrefix(fields[2], "v="); ok && isDigits(v) && v != "" {
			return nil, fmt.Errorf("%w: argon2 version %.10s", ErrUnknownScheme, v)
		}
		return nil, fmt.Errorf("%w: argon2 version field", ErrMalformed)
	}
	if err := p.parseParams(fields[3]); err != nil {
		return nil, err
	}
	if p.memory > l.argonMemory {
		return nil, fmt.Errorf("%w: argon2 m=%d KiB, limit %d", ErrTooCostly, p.memory, l.argonMemory)
	}
	if p.time > l.argonTime {
		return nil, fmt.Errorf("%w: argon2 t=%d, limit %d", ErrTooCostly, p.time, l.argonTime)
	}
	if uint64(p.memory)*uint64(p.time) > l.argonWork {
		return nil, fmt.Errorf("%w: argon2 m×t=%d KiB, limit %d", ErrTooCostly, uint64(p.memory)*uint64(p.time), l.argonWork)
	}
	if p.threads > l.argonThreads {
		return nil, fmt.Errorf("%w: argon2 p=%d, limit %d", ErrTooCostly, p.threads, l.argonThreads)
	}
	var err error
	if p.salt, err = decodeRawBase64(fields[4], argon2MinSalt); err != nil {
		return nil, fmt.Errorf("argon2 salt: %w", err)
	}
	if p.key, err = decodeRawBase64(fields[5], argon2MinKey); err != nil {
		return nil, fmt.Errorf("argon2 hash: %w", err)
	}
	return p, nil
}

// parseParams reads "m=…,t=…,p=…" in the PHC order. Optional keyid= and
// data= fields need a secret or associated data we do not have.
func (p *argon2Params) parseParams(s string) error {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return fmt.Errorf("%w: argon2 parameters are not m=,t=,p=", ErrMalformed)
	}
	for i, key := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(parts[i], key+"=")
		if !ok || v == "" || len(v) > 10 || !isDigits(v) {
			return fmt.Errorf("%w: argon2 parameter %s", ErrMalformed, key)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return fmt.Errorf("%w: argon2 parameter %s: %w", ErrMalformed, key, err)
		}
		switch key {
		case "m":
			p.memory = uint32(n)
		case "t":
			p.time = uint32(n)
		case "p":
			p.threads = uint32(n)
		}
	}
	// The specification's minimums: at least one pass and lane, and eight
	// KiB of memory per lane (below that x/crypto would silently raise it
	// and compute something the reference implementation refuses).
	if p.time < 1 || p.threads < 1 || uint64(p.memory) < 8*uint64(p.threads) {
		return fmt.Errorf("%w: argon2 parameters below the minimum (t≥1, p≥1, m≥8p)", ErrMalformed)
	}
	return nil
}

func decodeRawBase64(s string, minLen int) ([]byte, error) {
	if len(s) > argon2MaxLen*4/3+1 {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, argon2MaxLen)
	}
	if strings.ContainsAny(s, "\r\n=") {
		return nil, fmt.Errorf("%w: padding or line break in base64", ErrMalformed)
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: bad base64: %w", ErrMalformed, err)
	}
	if len(b) < minLen {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformed, len(b), minLen)
	}
	return b, nil
}

func hashArgon2(v argon2Variant) func(string) (string, error) {
	return func(plain string) (string, error) {
		salt, err := randomBytes(argon2SaltLen)
		if err != nil {
			return "", err
		}
		p := argon2Params{
			variant: v,
			memory:  argon2DefaultMemory,
			time:    argon2DefaultTime,
			threads: argon2DefaultThreads,
			salt:    salt,
			key:     make([]byte, argon2KeyLen),
		}
		key := p.derive([]byte(plain))
		return fmt.Sprintf("$%s$v=19$m=%d,t=%d,p=%d$%s$%s", v, p.memory, p.time, p.threads,
			base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
	}
}
