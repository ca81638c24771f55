package clamd

import (
	"strings"
	"testing"
)

// FuzzParseReply: any reply is a clean result, a printable virus name or
// an error, never a panic.
func FuzzParseReply(f *testing.F) {
	for _, seed := range []string{
		"stream: OK\x00",
		"stream: Eicar-Test-Signature.UNOFFICIAL FOUND\x00",
		"INSTREAM size limit exceeded. ERROR\x00",
		"stream: Can't allocate memory ERROR\x00",
		"stream:  FOUND\x00",
		"stream: OK",
		"\x00",
		"PONG\x00",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReply(b)
		if err != nil {
			return
		}
		if r.Virus != "" && (!printable(r.Virus) || strings.TrimSpace(r.Virus) != r.Virus) {
			t.Fatalf("virus name %q", r.Virus)
		}
	})
}
