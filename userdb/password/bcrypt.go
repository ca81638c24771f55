package password

import (
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/crypto/bcrypt"
)

// bcrypt ({BLF-CRYPT}) through golang.org/x/crypto/bcrypt. That package
// computes the same (correct) algorithm for $2a$, $2b$ and $2y$ and keeps
// the minor letter when it recomputes, so all three verify; $2x$ (PHP's
// marker for hashes made by the old sign-extension bug) and the ancient
// $2$ are refused, because x/crypto would accept and miscompute them.

// bcryptDefaultCost is what Hash writes: about 50–100 ms on a current core,
// above Dovecot's default of 5, which no longer slows an offline attack.
const bcryptDefaultCost = 10

const bcryptLen = 60 // "$2y$10$" + 22 salt + 31 hash characters

const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// parseBcrypt checks the whole string before handing it to x/crypto, which
// reads fixed offsets and ignores trailing bytes.
func parseBcrypt(l *limits, body, _ string) (matcher, error) {
	if len(body) != bcryptLen {
		return nil, fmt.Errorf("%w: bcrypt string is %d characters, want %d", ErrMalformed, len(body), bcryptLen)
	}
	if body[0] != '$' || body[1] != '2' || body[3] != '$' || body[6] != '$' {
		return nil, fmt.Errorf("%w: not a $2?$NN$ bcrypt string", ErrMalformed)
	}
	switch body[2] {
	case 'a', 'b', 'y':
	default:
		return nil, fmt.Errorf("%w: bcrypt variant %q", ErrUnknownScheme, body[:4])
	}
	if !isDigits(body[4:6]) {
		return nil, fmt.Errorf("%w: bcrypt cost is not two digits", ErrMalformed)
	}
	cost, _ := strconv.Atoi(body[4:6])
	if cost < bcrypt.MinCost {
		return nil, fmt.Errorf("%w: bcrypt cost %d below %d", ErrMalformed, cost, bcrypt.MinCost)
	}
	if cost > l.bcryptCost {
		return nil, fmt.Errorf("%w: bcrypt cost %d, limit %d", ErrTooCostly, cost, l.bcryptCost)
	}
	if !inAlphabet(body[7:], bcryptAlphabet) {
		return nil, fmt.Errorf("%w: bad character in bcrypt salt or hash", ErrMalformed)
	}
	stored := []byte(body)
	return func(plain string) bool {
		// Constant-time comparison happens inside x/crypto. Bcrypt reads
		// at most 72 bytes of the password, as every implementation does.
		err := bcrypt.CompareHashAndPassword(stored, []byte(plain))
		return err == nil
	}, nil
}

// hashBcrypt writes $2y$, as Dovecot and PHP do; for passwords bcrypt can
// take (≤ 72 bytes) it is the same computation as x/crypto's $2a$.
func hashBcrypt(plain string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(plain), bcryptDefaultCost)
	if errors.Is(err, bcrypt.ErrPasswordTooLong) {
		return "", fmt.Errorf("%w: bcrypt uses at most 72 bytes", ErrPasswordTooLong)
	}
	if err != nil {
		return "", err
	}
	h[2] = 'y'
	return string(h), nil
}
