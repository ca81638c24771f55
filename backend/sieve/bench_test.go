package sieve

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
)

// fiftyRules is a typical heavy user script: list sorting, spam, senders
// and subjects, each rule a different test.
func fiftyRules() string {
	var b strings.Builder
	b.WriteString("require [\"fileinto\", \"imap4flags\", \"variables\", \"relational\", \"comparator-i;ascii-numeric\", \"body\"];\n")
	for i := range 50 {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&b, "if header :contains \"list-id\" \"list%d.example.org\" { fileinto \"Lists/%d\"; stop; }\n", i, i)
		case 1:
			fmt.Fprintf(&b, "if address :is :domain \"from\" \"sender%d.example\" { fileinto \"Senders/%d\"; }\n", i, i)
		case 2:
			fmt.Fprintf(&b, "if header :matches \"subject\" \"*[ticket-%d]*\" { addflag \"t%d\"; }\n", i, i)
		case 3:
			fmt.Fprintf(&b, "if allof (exists \"x-spam-score\", header :value \"ge\" :comparator \"i;ascii-numeric\" \"x-spam-score\" \"%d\") { fileinto \"Junk\"; stop; }\n", 50+i)
		case 4:
			fmt.Fprintf(&b, "if body :text :contains \"unsubscribe-%d\" { fileinto \"Newsletters\"; }\n", i)
		}
	}
	return b.String()
}

// BenchmarkRun: one run per message (message parse included, as a
// delivery does it) with no script and with a 50-rule script.
func BenchmarkRun(b *testing.B) {
	raw, err := os.ReadFile("testdata/messages/14-multipart.eml")
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, src string }{{"none", ""}, {"50-rules", fiftyRules()}} {
		s, err := Compile([]byte(tc.src), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m := ParseMessage(raw)
				if _, err := s.Run(context.Background(), Env{From: "a@example.org", To: "me@example.com"}, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("compile-50-rules", func(b *testing.B) {
		src := []byte(fiftyRules())
		for b.Loop() {
			if _, err := Compile(src, Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
