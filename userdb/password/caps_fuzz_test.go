package password

import (
	"errors"
	"math"
	"regexp"
	"strconv"
	"testing"
)

// Cost parameters as a stored hash states them, read here independently
// of the parsers under test.
var (
	costShaCrypt = regexp.MustCompile(`(?i)^(?:\{[a-z0-9-]+\})?\$[56]\$rounds=([0-9]+)\$`)
	costBcrypt   = regexp.MustCompile(`(?i)^(?:\{[a-z0-9-]+\})?\$2[aby]\$([0-9]{2})\$`)
	costArgon2   = regexp.MustCompile(`(?i)^\{argon2i?d?\}\$argon2(?:id|i)\$v=19\$m=([0-9]+),t=([0-9]+),p=([0-9]+)\$`)
)

// stated returns the costs a stored hash asks for, math.MaxUint64 for a
// number too large to read; ok is false when it states none.
func stated(stored string) (rounds, cost, memory, passes, lanes uint64, ok bool) {
	num := func(s string) uint64 {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return math.MaxUint64
		}
		return n
	}
	if m := costShaCrypt.FindStringSubmatch(stored); m != nil {
		return num(m[1]), 0, 0, 0, 0, true
	}
	if m := costBcrypt.FindStringSubmatch(stored); m != nil {
		return 0, num(m[1]), 0, 0, 0, true
	}
	if m := costArgon2.FindStringSubmatch(stored); m != nil {
		return 0, 0, num(m[1]), num(m[2]), num(m[3]), true
	}
	return 0, 0, 0, 0, 0, false
}

// errClass is the one error class of a Verify error, or "" for none.
func errClass(err error) string {
	var classes []string
	for name, class := range map[string]error{"unknown": ErrUnknownScheme, "malformed": ErrMalformed, "costly": ErrTooCostly} {
		if errors.Is(err, class) {
			classes = append(classes, name)
		}
	}
	if len(classes) != 1 {
		return ""
	}
	return classes[0]
}

// FuzzVerifyCaps: whatever the stored value, Verify's error has exactly
// one class and does not depend on the password (the stored hash is judged
// first); a hash that is accepted asks for no more work than the limits
// allow (read from the string by this test, not by the parser); and a hash
// asking for more than any cap could allow is refused by Verify with its
// defaults before any hashing.
func FuzzVerifyCaps(f *testing.F) {
	for _, s := range []string{
		"{SHA512-CRYPT}$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.",
		"{SHA512-CRYPT}$6$rounds=999999999$s$" + "x",
		"$5$rounds=00000000000000000001000$salt$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
		"{BLF-CRYPT}$2y$05$VijZ9/9SED5zx1O7RpfsAeeGS.V.3zFl165774hOBUHEk48BD.tlG",
		"{BLF-CRYPT}$2y$31$VijZ9/9SED5zx1O7RpfsAeeGS.V.3zFl165774hOBUHEk48BD.tlG",
		"{ARGON2ID}$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"{ARGON2ID}$argon2id$v=19$m=4294967295,t=4294967295,p=256$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"{ARGON2I}$argon2i$v=19$m=1048576,t=64,p=255$c29tZXNhbHQ$CTFh",
		"{CRYPT}$2a$99$" + "C",
		"{PLAIN.HEX}7365637265",
	} {
		f.Add(s, "secret")
	}
	f.Fuzz(func(t *testing.T, stored, plain string) {
		_, judged := fuzzLimits.verify(stored, "")
		ok, err := fuzzLimits.verify(stored, plain)
		if errClass(err) != errClass(judged) || (err == nil) != (judged == nil) {
			t.Fatalf("the password changed the verdict on %q: %v, then %v", stored, judged, err)
		}
		if err != nil && errClass(err) == "" {
			t.Fatalf("error of no single class: %v", err)
		}
		if ok && err != nil {
			t.Fatalf("match with an error: %v", err)
		}
		rounds, cost, memory, passes, lanes, hasCost := stated(stored)
		if !hasCost {
			return
		}
		if err == nil && (rounds > uint64(fuzzLimits.shaCryptRounds) || cost > uint64(fuzzLimits.bcryptCost) ||
			memory > uint64(fuzzLimits.argonMemory) || passes > uint64(fuzzLimits.argonTime) || lanes > uint64(fuzzLimits.argonThreads)) {
			t.Fatalf("%q accepted over the limits %+v", stored, fuzzLimits)
		}
		// Beyond what any cap would allow: 10 million SHA-crypt rounds,
		// bcrypt cost 16, argon2 over 1 GiB, 64 passes, 4 GiB×passes or
		// 255 lanes.
		absurd := rounds > 10_000_000 || cost > 16 || memory > 1<<20 || passes > 64 ||
			memory != math.MaxUint64 && passes != math.MaxUint64 && memory*passes > 4<<20 || lanes > 255
		if absurd {
			if ok, err := Verify(stored, plain); ok || err == nil {
				t.Fatalf("Verify(%q) with the default limits = %v, %v; want a refusal", stored, ok, err)
			}
		}
	})
}
