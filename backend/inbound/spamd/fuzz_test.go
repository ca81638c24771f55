package spamd

import (
	"math"
	"testing"
)

// FuzzParseResponse: any answer is a result with finite scores and rule
// names fit for a header field, or an error, never a panic.
func FuzzParseResponse(f *testing.F) {
	for _, seed := range []string{
		"SPAMD/1.1 0 EX_OK\r\nContent-length: 30\r\nSpam: True ; 1003.3 / 5.0\r\n\r\nGTUBE,MISSING_DATE,NO_RECEIVED",
		"SPAMD/1.1 0 EX_OK\r\nSpam: False ; 3.3 / 5.0\r\n\r\n",
		"SPAMD/1.0 76 Bad header line: (Content-Length mismatch)\r\n\r\n",
		"SPAMD/1.1 0 EX_OK\r\nSpam: Yes ; NaN / 5.0\r\n\r\n",
		"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 1 / 2\r\n\r\nA B,\r\nC\x00",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResponse(b)
		if err != nil {
			return
		}
		if math.IsNaN(r.Score) || math.IsInf(r.Score, 0) || math.IsNaN(r.Threshold) || math.IsInf(r.Threshold, 0) {
			t.Fatalf("scores %v / %v", r.Score, r.Threshold)
		}
		for _, s := range r.Symbols {
			if s == "" || !ruleName(s) {
				t.Fatalf("rule name %q", s)
			}
		}
	})
}
