package password

import (
	"errors"
	"strings"
	"testing"
)

// TestRoundTrip makes a hash in every scheme Hash offers and verifies it.
func TestRoundTrip(t *testing.T) {
	const secret = "correct horse battery staple ✓"
	for _, scheme := range append(Schemes(), "", "ssha512", "Blf-Crypt") {
		t.Run(scheme, func(t *testing.T) {
			stored, err := Hash(scheme, secret)
			if err != nil {
				t.Fatalf("Hash(%q): %v", scheme, err)
			}
			want := strings.ToUpper(scheme)
			if want == "" {
				want = DefaultScheme
			}
			if got := Scheme(stored); got != want {
				t.Errorf("Scheme(%q) = %q, want %q", stored, got, want)
			}
			if ok, err := Verify(stored, secret); !ok || err != nil {
				t.Errorf("Verify(%q, right) = %v, %v; want true, nil", stored, ok, err)
			}
			for _, wrong := range []string{"correct horse battery staple", secret + " ", "x", strings.ToUpper(secret)} {
				if ok, err := Verify(stored, wrong); ok || err != nil {
					t.Errorf("Verify(%q, %q) = %v, %v; want false, nil", stored, wrong, ok, err)
				}
			}
			// Two hashes of one password differ: the salt is random.
			if scheme != "PLAIN" && scheme != "CLEARTEXT" && scheme != "CLEAR" {
				again, err := Hash(scheme, secret)
				if err != nil || again == stored {
					t.Errorf("second Hash(%q) = %q, %v; want a different salt", scheme, again, err)
				}
			}
		})
	}
}

func TestHashParameters(t *testing.T) {
	tests := []struct {
		scheme, prefix string
	}{
		{"", "{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$"},
		{"ARGON2I", "{ARGON2I}$argon2i$v=19$m=19456,t=2,p=1$"},
		{"BLF-CRYPT", "{BLF-CRYPT}$2y$10$"},
		{"SHA512-CRYPT", "{SHA512-CRYPT}$6$"},
		{"SHA256-CRYPT", "{SHA256-CRYPT}$5$"},
		{"CRYPT", "{CRYPT}$6$"},
	}
	for _, tt := range tests {
		got, err := Hash(tt.scheme, "secret")
		if err != nil || !strings.HasPrefix(got, tt.prefix) {
			t.Errorf("Hash(%q) = %q, %v; want prefix %q", tt.scheme, got, err, tt.prefix)
		}
	}
}

func TestHashErrors(t *testing.T) {
	tests := []struct {
		scheme, plain string
		want          error
	}{
		{"MD5", "secret", ErrUnknownScheme},
		{"{SSHA}", "secret", ErrUnknownScheme},
		{"SSHA.HEX", "secret", ErrUnknownScheme},
		{"SHA", "secret", ErrVerifyOnly},
		{"sha256", "secret", ErrVerifyOnly},
		{"SSHA", "", ErrEmptyPassword},
		{"SSHA", strings.Repeat("a", MaxPasswordLen+1), ErrPasswordTooLong},
		{"BLF-CRYPT", strings.Repeat("a", 73), ErrPasswordTooLong},
	}
	for _, tt := range tests {
		got, err := Hash(tt.scheme, tt.plain)
		if !errors.Is(err, tt.want) || got != "" {
			t.Errorf("Hash(%q, %d bytes) = %q, %v; want %v", tt.scheme, len(tt.plain), got, err, tt.want)
		}
	}
}

func TestSchemeNames(t *testing.T) {
	tests := []struct{ stored, want string }{
		{"{ssha}abc", "SSHA"},
		{"{Sha256.Hex}abc", "SHA256"},
		{"$6$salt$hash", "CRYPT"},
		{"$2y$10$x", "CRYPT"},
		{"$1$salt$hash", ""},
		{"plaintext", ""},
		{"", ""},
		{"{unterminated", ""},
	}
	for _, tt := range tests {
		if got := Scheme(tt.stored); got != tt.want {
			t.Errorf("Scheme(%q) = %q, want %q", tt.stored, got, tt.want)
		}
	}
}

// TestCaseInsensitive: directories written by hand use any case.
func TestCaseInsensitive(t *testing.T) {
	for _, stored := range []string{
		"{ssha}dt8HSbBGEzP9rtVgpLF1MDSObhf3sQll",
		"{sha}5en6G6MezRroT3XKqkdPOmY/BfQ=",
		"{Plain}secret",
		"{sha256.hex}2BB80D537B1DA3E38BD30361AA855686BDE0EACD7162FEF6A25FE97BF527A25B",
		"{sha512-crypt}$6$su.jclMofjEFO9M4$w96CeymVoCzk.ibtj6h/j8x36YUGOw5WyaNUWor6wC05OKe9.864Pseq7EQJl/bewD8fKJJRePMFnAU5VkBld1",
		"{blf-crypt}$2y$05$VijZ9/9SED5zx1O7RpfsAeeGS.V.3zFl165774hOBUHEk48BD.tlG",
	} {
		if ok, err := Verify(stored, "secret"); !ok || err != nil {
			t.Errorf("Verify(%q) = %v, %v; want true, nil", stored, ok, err)
		}
	}
}

// TestHostileStored feeds broken, truncated and absurd stored values: each
// must be a precise error (never a match, never a panic) and must be
// refused before any expensive hashing.
func TestHostileStored(t *testing.T) {
	const sha512Hash = "w96CeymVoCzk.ibtj6h/j8x36YUGOw5WyaNUWor6wC05OKe9.864Pseq7EQJl/bewD8fKJJRePMFnAU5VkBld1"
	const bcryptRest = "VijZ9/9SED5zx1O7RpfsAeeGS.V.3zFl165774hOBUHEk48BD.tlG"
	const argonTail = "$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	tests := []struct {
		name, stored string
		want         error
	}{
		{"empty", "", ErrUnknownScheme},
		{"no prefix", "secret", ErrUnknownScheme},
		{"md5-crypt bare", "$1$salt$hash", ErrUnknownScheme},
		{"unknown scheme", "{MD5}Xr4ilOzQ4PCOq3aQ0qbuaQ==", ErrUnknownScheme},
		{"unterminated", "{SSHA", ErrMalformed},
		{"overlong scheme", "{" + strings.Repeat("A", 40) + "}x", ErrMalformed},
		{"NUL in scheme", "{SS\x00HA}abcd", ErrUnknownScheme},
		{"unknown encoding", "{SSHA.ROT13}abcd", ErrUnknownScheme},
		{"encoding on crypt", "{BLF-CRYPT.HEX}$2y$05$" + bcryptRest, ErrUnknownScheme},
		{"oversized stored", "{PLAIN}" + strings.Repeat("a", maxStoredLen), ErrMalformed},

		{"SSHA empty body", "{SSHA}", ErrMalformed},
		{"SSHA bad base64", "{SSHA}!!!!not*base64", ErrMalformed},
		{"SSHA shorter than digest", "{SSHA}c2VjcmV0", ErrMalformed},
		{"SSHA line break", "{SSHA}dt8HSbBGEzP9rtVgpLF1\nMDSObhf3sQll", ErrMalformed},
		{"SHA wrong length", "{SHA}5en6G6MezRroT3XKqkdPOmY/Bf", ErrMalformed},
		{"SHA with salt", "{SHA}dt8HSbBGEzP9rtVgpLF1MDSObhf3sQll", ErrMalformed},
		{"SHA256 bad hex", "{SHA256.HEX}zz", ErrMalformed},
		{"PLAIN bad base64", "{PLAIN.B64}@@@", ErrMalformed},

		{"sha-crypt truncated", "{SHA512-CRYPT}$6$salt$w96CeymVoCzk", ErrMalformed},
		{"sha-crypt no hash", "{SHA512-CRYPT}$6$salt", ErrMalformed},
		{"sha-crypt prefix only", "{SHA512-CRYPT}$6$", ErrMalformed},
		{"sha-crypt wrong variant", "{SHA512-CRYPT}$5$salt$" + sha512Hash, ErrMalformed},
		{"sha-crypt empty rounds", "$6$rounds=$salt$" + sha512Hash, ErrMalformed},
		{"sha-crypt negative rounds", "$6$rounds=-5$salt$" + sha512Hash, ErrMalformed},
		{"sha-crypt huge rounds", "$6$rounds=99999999999999$salt$" + sha512Hash, ErrMalformed},
		{"sha-crypt rounds over limit", "$6$rounds=10000001$salt$" + sha512Hash, ErrTooCostly},
		{"sha-crypt long salt", "$6$saltsaltsaltsaltsalt$" + sha512Hash, ErrMalformed},
		{"sha-crypt control in salt", "$6$sa\x00lt$" + sha512Hash, ErrMalformed},
		{"sha-crypt bad alphabet", "$6$salt$" + strings.Repeat("!", 86), ErrMalformed},
		{"sha-crypt trailing", "$6$salt$" + sha512Hash + "$", ErrMalformed},

		{"bcrypt truncated", "{BLF-CRYPT}$2y$05$VijZ9/9SED5zx1O7", ErrMalformed},
		{"bcrypt 2x", "{BLF-CRYPT}$2x$05$" + bcryptRest, ErrUnknownScheme},
		{"bcrypt 2 no minor", "{BLF-CRYPT}$2$05$" + bcryptRest + "x", ErrMalformed},
		{"bcrypt cost too low", "{BLF-CRYPT}$2y$03$" + bcryptRest, ErrMalformed},
		{"bcrypt cost over limit", "{BLF-CRYPT}$2y$31$" + bcryptRest, ErrTooCostly},
		{"bcrypt cost not digits", "{BLF-CRYPT}$2y$1a$" + bcryptRest, ErrMalformed},
		{"bcrypt bad alphabet", "{BLF-CRYPT}$2y$05$" + strings.Repeat("!", 53), ErrMalformed},
		{"bcrypt trailing", "{BLF-CRYPT}$2y$05$" + bcryptRest + "x", ErrMalformed},
		{"crypt unknown method", "{CRYPT}$7$CU..../....salt$hash", ErrUnknownScheme},
		{"crypt DES", "{CRYPT}abJnggxhB/yWI", ErrUnknownScheme},
		{"crypt empty", "{CRYPT}", ErrMalformed},

		{"argon2 empty", "{ARGON2ID}", ErrMalformed},
		{"argon2 truncated", "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ", ErrMalformed},
		{"argon2 version 16", "{ARGON2ID}$argon2id$v=16$m=65536,t=2,p=1" + argonTail, ErrUnknownScheme},
		{"argon2 no version", "{ARGON2ID}$argon2id$m=65536,t=2,p=1" + argonTail, ErrUnknownScheme},
		{"argon2 bad version", "{ARGON2ID}$argon2id$v=x$m=65536,t=2,p=1" + argonTail, ErrMalformed},
		{"argon2d", "{ARGON2ID}$argon2d$v=19$m=65536,t=2,p=1" + argonTail, ErrUnknownScheme},
		{"argon2 other", "{ARGON2ID}$scrypt$v=19$m=65536,t=2,p=1" + argonTail, ErrMalformed},
		{"argon2 params order", "{ARGON2ID}$argon2id$v=19$t=2,m=65536,p=1" + argonTail, ErrMalformed},
		{"argon2 params missing", "{ARGON2ID}$argon2id$v=19$m=65536,t=2" + argonTail, ErrMalformed},
		{"argon2 keyid", "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1,keyid=abc" + argonTail, ErrMalformed},
		{"argon2 m zero", "{ARGON2ID}$argon2id$v=19$m=0,t=2,p=1" + argonTail, ErrMalformed},
		{"argon2 m below 8p", "{ARGON2ID}$argon2id$v=19$m=15,t=2,p=2" + argonTail, ErrMalformed},
		{"argon2 t zero", "{ARGON2ID}$argon2id$v=19$m=65536,t=0,p=1" + argonTail, ErrMalformed},
		{"argon2 p zero", "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=0" + argonTail, ErrMalformed},
		{"argon2 m overflow", "{ARGON2ID}$argon2id$v=19$m=4294967296,t=2,p=1" + argonTail, ErrMalformed},
		{"argon2 m negative", "{ARGON2ID}$argon2id$v=19$m=-1,t=2,p=1" + argonTail, ErrMalformed},
		{"argon2 m over 1GiB", "{ARGON2ID}$argon2id$v=19$m=1048577,t=1,p=1" + argonTail, ErrTooCostly},
		{"argon2 t over limit", "{ARGON2ID}$argon2id$v=19$m=64,t=65,p=1" + argonTail, ErrTooCostly},
		{"argon2 work over limit", "{ARGON2ID}$argon2id$v=19$m=1048576,t=5,p=1" + argonTail, ErrTooCostly},
		{"argon2 p over limit", "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=256" + argonTail, ErrTooCostly},
		{"argon2 short salt", "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", ErrMalformed},
		{"argon2 padded salt", "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ=$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", ErrMalformed},
		{"argon2 bad hash base64", "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$!!!", ErrMalformed},
		{"argon2 short hash", "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$YWI", ErrMalformed},
		{"argon2 huge hash", "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$" + strings.Repeat("A", 2000), ErrMalformed},
		{"argon2 extra field", "{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1" + argonTail + "$x", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, plain := range []string{"secret", ""} {
				ok, err := Verify(tt.stored, plain)
				if ok || !errors.Is(err, tt.want) {
					t.Errorf("Verify(%.80q, %q) = %v, %v; want false, %v", tt.stored, plain, ok, err, tt.want)
				}
			}
		})
	}
}

// TestHostilePassword: what a client types never matches by accident and
// never makes us work on a 10 KB input.
func TestHostilePassword(t *testing.T) {
	huge := strings.Repeat("A", 10<<10)
	tests := []struct {
		name, stored, plain string
	}{
		{"huge vs plain", "{PLAIN}secret", "secret" + huge},
		{"huge vs sha-crypt", "{SHA512-CRYPT}$6$su.jclMofjEFO9M4$w96CeymVoCzk.ibtj6h/j8x36YUGOw5WyaNUWor6wC05OKe9.864Pseq7EQJl/bewD8fKJJRePMFnAU5VkBld1", huge},
		{"huge vs argon2", "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$9PzGTFlpFkYQDS9ckYRdVA$bgj7OFaxd6S+eXW9HREO5xbCmO8I3EzunFgZal6CNGs", huge},
		{"just over the limit", "{PLAIN}" + strings.Repeat("b", MaxPasswordLen+1), strings.Repeat("b", MaxPasswordLen+1)},
		{"empty vs empty plain", "{PLAIN}", ""},
		{"empty vs bcrypt of empty", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy", ""},
		{"NUL suffix", "{SSHA}dt8HSbBGEzP9rtVgpLF1MDSObhf3sQll", "secret\x00"},
		{"NUL suffix sha-crypt", "{SHA512-CRYPT}$6$su.jclMofjEFO9M4$w96CeymVoCzk.ibtj6h/j8x36YUGOw5WyaNUWor6wC05OKe9.864Pseq7EQJl/bewD8fKJJRePMFnAU5VkBld1", "secret\x00"},
		{"NUL suffix bcrypt", "{BLF-CRYPT}$2y$05$VijZ9/9SED5zx1O7RpfsAeeGS.V.3zFl165774hOBUHEk48BD.tlG", "secret\x00"},
		{"NUL suffix plain", "{PLAIN}secret", "secret\x00"},
		{"prefix of plain", "{PLAIN}secret", "secre"},
		{"stored value as password", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := Verify(tt.stored, tt.plain)
			if ok || err != nil {
				t.Errorf("Verify = %v, %v; want false, nil", ok, err)
			}
		})
	}
	// The limit itself is a usable length.
	long := strings.Repeat("c", MaxPasswordLen)
	stored, err := Hash("SSHA512", long)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := Verify(stored, long); !ok || err != nil {
		t.Errorf("Verify(%d-byte password) = %v, %v; want true, nil", MaxPasswordLen, ok, err)
	}
	// NUL inside a password is just a byte.
	if ok, err := Verify("{PLAIN}a\x00b", "a\x00b"); !ok || err != nil {
		t.Errorf("Verify(NUL inside) = %v, %v; want true, nil", ok, err)
	}
}
