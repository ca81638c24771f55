package password

import (
	"strings"
	"testing"
)

// fuzzLimits keep each fuzzed verification cheap; the parsers and the
// refusal paths are the same as with the defaults.
var fuzzLimits = limits{
	shaCryptRounds: 5000,
	bcryptCost:     5,
	argonMemory:    1024,
	argonTime:      3,
	argonWork:      2048,
	argonThreads:   4,
}

// FuzzVerify: no stored value or password panics, an error is never a
// match, and an empty password never matches. The seed corpus runs as part
// of the normal tests; fuzz with
//
//	go test -run '^$' -fuzz FuzzVerify ./userdb/password/
func FuzzVerify(f *testing.F) {
	seeds := [][2]string{
		{"{SSHA}dt8HSbBGEzP9rtVgpLF1MDSObhf3sQll", "secret"},
		{"{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "secret"},
		{"{SHA256.HEX}2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b", "secret"},
		{"{SSHA512}sguenNthYrB3kG9UZE03AkEmj41GGjn1xj1VUf0aTdr/Z7BvgzT0OqnqVuCmzkY/M9mzOb9y12VVYBJMZg0ufNmifSU=", "secret"},
		{"{PLAIN.B64}c2VjcmV0", "secret"},
		{"{CLEARTEXT}secret", "secret"},
		{"$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", "Hello world!"},
		{"{SHA512-CRYPT}$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.", "the minimum number is still observed"},
		{"{CRYPT}$6$rounds=10000$w6Vb0w0EoxTMOGS$OfElREbwOYNIFM7r6p3mdZgK0u8kF.sD2gbC2xteQohz0r/2Nhmy/FuIo6sZL.MboesSnGqODV1/zABRLN8x0.", "secret"},
		{"{BLF-CRYPT}$2y$05$VijZ9/9SED5zx1O7RpfsAeeGS.V.3zFl165774hOBUHEk48BD.tlG", "secret"},
		{"$2a$04$" + strings.Repeat("C", 53), "U*U"},
		{"{ARGON2ID}$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "password"},
		{"{ARGON2I}$argon2i$v=19$m=64,t=2,p=2$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA", "password"},
		{"{ARGON2ID}$argon2id$m=65536,t=2,p=1$c29tZXNhbHQ$CTFh", "x"},
		{"{SSHA}", "x"},
		{"{", ""},
		{"", "secret"},
		{"$1$salt$hash", "secret"},
		{"{CRYPT}abJnggxhB/yWI", "secret"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, stored, plain string) {
		ok, err := fuzzLimits.verify(stored, plain)
		if ok && err != nil {
			t.Fatalf("match with error %v", err)
		}
		if ok && plain == "" {
			t.Fatal("empty password matched")
		}
		_ = Scheme(stored)
	})
}

// FuzzRoundTrip: any password Hash takes verifies, in the cheap schemes.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"secret", "a\x00b", "ünïcödé", strings.Repeat("x", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, plain string) {
		for _, scheme := range []string{"SSHA", "SSHA512", "PLAIN"} {
			stored, err := Hash(scheme, plain)
			if err != nil {
				if plain == "" || len(plain) > MaxPasswordLen {
					continue
				}
				t.Fatalf("Hash(%s): %v", scheme, err)
			}
			if ok, err := Verify(stored, plain); !ok || err != nil {
				t.Fatalf("Verify(%q) = %v, %v", stored, ok, err)
			}
		}
	})
}
