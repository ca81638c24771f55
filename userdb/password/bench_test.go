package password

import "testing"

// BenchmarkVerify measures one successful verification per scheme, with
// the parameters real tools write by default (Dovecot's for the Dovecot
// schemes, ours for the Hash defaults).
func BenchmarkVerify(b *testing.B) {
	const plain = "secret"
	mustHash := func(scheme string) string {
		s, err := Hash(scheme, plain)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	benches := []struct{ name, stored string }{
		{"PLAIN", "{PLAIN}secret"},
		{"SHA", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="},
		{"SSHA", "{SSHA}dt8HSbBGEzP9rtVgpLF1MDSObhf3sQll"},
		{"SSHA256", mustHash("SSHA256")},
		{"SSHA512", mustHash("SSHA512")},
		{"SHA256-CRYPT-5000", mustHash("SHA256-CRYPT")},
		{"SHA512-CRYPT-5000", mustHash("SHA512-CRYPT")},
		{"BLF-CRYPT-5-dovecot", "{BLF-CRYPT}$2y$05$VijZ9/9SED5zx1O7RpfsAeeGS.V.3zFl165774hOBUHEk48BD.tlG"},
		{"BLF-CRYPT-10-default", mustHash("BLF-CRYPT")},
		{"ARGON2ID-19MiB-t2-default", mustHash("ARGON2ID")},
		{"ARGON2ID-64MiB-t3-dovecot", "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$9PzGTFlpFkYQDS9ckYRdVA$bgj7OFaxd6S+eXW9HREO5xbCmO8I3EzunFgZal6CNGs"},
		{"ARGON2I-32MiB-t4-dovecot", "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$QHDW1RXGNAodhHg4uPZ0rw$AwF8MgTwbZ5Hgfnmrp0eW6gIzQJ9RdfQFdVjQZIoNCM"},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				if ok, err := Verify(bb.stored, plain); !ok || err != nil {
					b.Fatalf("Verify = %v, %v", ok, err)
				}
			}
		})
	}
}

// BenchmarkRefuse measures what a refused input costs: a too-costly stored
// hash and an oversized password must be near free.
func BenchmarkRefuse(b *testing.B) {
	long := string(make([]byte, 10<<10))
	benches := []struct{ name, stored, plain string }{
		{"rounds-over-limit", "$6$rounds=99999999$salt$w96CeymVoCzk.ibtj6h/j8x36YUGOw5WyaNUWor6wC05OKe9.864Pseq7EQJl/bewD8fKJJRePMFnAU5VkBld1", "secret"},
		{"argon2-memory-over-limit", "{ARGON2ID}$argon2id$v=19$m=4194304,t=3,p=1$9PzGTFlpFkYQDS9ckYRdVA$bgj7OFaxd6S+eXW9HREO5xbCmO8I3EzunFgZal6CNGs", "secret"},
		{"10KB-password-sha512-crypt", "{SHA512-CRYPT}$6$su.jclMofjEFO9M4$w96CeymVoCzk.ibtj6h/j8x36YUGOw5WyaNUWor6wC05OKe9.864Pseq7EQJl/bewD8fKJJRePMFnAU5VkBld1", long},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				if ok, _ := Verify(bb.stored, bb.plain); ok {
					b.Fatal("matched")
				}
			}
		})
	}
}
