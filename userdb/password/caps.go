package password

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Caps bounds the cost parameters a stored hash may ask for. A hash over a
// cap is refused before any of its work is done or its memory allocated:
// the directory, not the client, chooses these parameters, and an
// imported Dovecot argon2 hash may ask for a GiB per login. A zero field
// means its default (DefaultCaps).
//
// The defaults accept what the usual tools write by default, with room:
// glibc, Dovecot and slappasswd's SHA-crypt (5000 rounds; passlib's
// 656000), Dovecot's and PHP's bcrypt (cost 5 to 12), doveadm's Argon2id
// (64 MiB, 3 passes, 1 lane), slappasswd's and the argon2 tool's Argon2
// (4 MiB, 3 passes, 1 lane) and our own (19 MiB, 2 passes).
type Caps struct {
	SHACryptRounds int `yaml:"max_sha_crypt_rounds" help:"highest rounds=N of a {SHA256-CRYPT}/{SHA512-CRYPT} hash verified; costlier hashes are refused (the login fails)"`
	BcryptCost     int `yaml:"max_bcrypt_cost" help:"highest cost of a {BLF-CRYPT} hash verified; costlier hashes are refused"`
	Argon2Memory   int `yaml:"max_argon2_memory" help:"highest m= (KiB) of an {ARGON2I}/{ARGON2ID} hash verified; every verification running at once holds this much; also caps m × t at 4 × this"`
	Argon2Passes   int `yaml:"max_argon2_passes" help:"highest t= (passes) of an Argon2 hash verified"`
	Argon2Lanes    int `yaml:"max_argon2_lanes" help:"highest p= (lanes) of an Argon2 hash verified"`
}

// DefaultCaps returns the caps a zero Caps stands for.
func DefaultCaps() Caps {
	return Caps{
		SHACryptRounds: 1_000_000,
		BcryptCost:     14,
		Argon2Memory:   256 << 10, // KiB: 256 MiB, Dovecot's "moderate" Argon2id
		Argon2Passes:   16,
		Argon2Lanes:    16,
	}
}

// withDefaults fills zero (or negative) fields from DefaultCaps.
func (c Caps) withDefaults() Caps {
	d := DefaultCaps()
	if c.SHACryptRounds <= 0 {
		c.SHACryptRounds = d.SHACryptRounds
	}
	if c.BcryptCost <= 0 {
		c.BcryptCost = d.BcryptCost
	}
	if c.Argon2Memory <= 0 {
		c.Argon2Memory = d.Argon2Memory
	}
	if c.Argon2Passes <= 0 {
		c.Argon2Passes = d.Argon2Passes
	}
	if c.Argon2Lanes <= 0 {
		c.Argon2Lanes = d.Argon2Lanes
	}
	return c
}

// Check reports a cap that no hash could ever reach or that the libraries
// cannot honour, for the configuration check.
func (c Caps) Check() error {
	c = c.withDefaults()
	switch {
	case c.BcryptCost > 31:
		return fmt.Errorf("max_bcrypt_cost %d: bcrypt costs end at 31", c.BcryptCost)
	case int64(c.Argon2Memory) > math.MaxUint32:
		return fmt.Errorf("max_argon2_memory %d: above 4 TiB", c.Argon2Memory)
	case int64(c.Argon2Passes) > math.MaxUint32:
		return fmt.Errorf("max_argon2_passes %d: too large", c.Argon2Passes)
	case c.Argon2Lanes > 255:
		return fmt.Errorf("max_argon2_lanes %d: Argon2 lanes end at 255 here", c.Argon2Lanes)
	}
	return nil
}

func (c Caps) limits() limits {
	c = c.withDefaults()
	mem := uint32(min(int64(c.Argon2Memory), math.MaxUint32))
	return limits{
		shaCryptRounds: c.SHACryptRounds,
		bcryptCost:     c.BcryptCost,
		argonMemory:    mem,
		argonTime:      uint32(min(int64(c.Argon2Passes), math.MaxUint32)),
		argonWork:      4 * uint64(mem),
		argonThreads:   uint32(min(c.Argon2Lanes, 255)),
	}
}

// Verify reports whether plain matches the stored hash, refusing a hash
// over the caps with ErrTooCostly. Before the expensive part it asks the
// Admission ctx carries (see WithAdmission), if any; when that refuses,
// the error wraps ErrNotAdmitted and the password was not checked, so the
// answer is "try later", not "no".
func (c Caps) Verify(ctx context.Context, stored, plain string) (bool, error) {
	l := c.limits()
	match, err := l.prepare(stored, plain)
	if err != nil || match == nil {
		return false, err
	}
	done, err := Admit(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	return match(plain), nil
}

// ErrNotAdmitted is wrapped by Verify's error when the context's Admission
// refused the verification (too many at once, or the client gave up).
var ErrNotAdmitted = errors.New("password verification not admitted")

// Admission decides when a verification may run. The login service puts
// one in the context of each login attempt, to bound how many
// verifications run at once across every protocol and to count them; the
// password package itself keeps no state.
type Admission interface {
	// Admit blocks until one verification may run and returns the func
	// to call when it has finished, or an error saying why it may not
	// run (waiting is bounded by ctx).
	Admit(ctx context.Context) (done func(), err error)
}

type admissionKey struct{}

// WithAdmission returns a context whose verifications (Caps.Verify) ask a
// first. It follows the pattern of net/http/httptrace: the hook belongs to
// one request, and the directory code between the login service and the
// verification needs no parameter for it.
func WithAdmission(ctx context.Context, a Admission) context.Context {
	return context.WithValue(ctx, admissionKey{}, a)
}

// Admit asks ctx's Admission, if any, for one verification. Verify calls
// it; other password checks that cost as much (none today) would too.
func Admit(ctx context.Context) (done func(), err error) {
	a, _ := ctx.Value(admissionKey{}).(Admission)
	if a == nil {
		return func() {}, nil
	}
	done, err = a.Admit(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotAdmitted, err)
	}
	return done, nil
}
