package srs

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzReverse: Reverse reads RCPT TO from anyone and must never panic;
// whatever it reverses it could have written; and every address Forward
// writes reverses to the sender it was given.
//
//	go test -run '^$' -fuzz FuzzReverse -fuzztime 1m ./backend/srs
func FuzzReverse(f *testing.F) {
	for _, s := range []string{
		"SRS0=vmyz=2W=otherdomain.com=test@example.com",
		"SRS1=uK14=first.org==abcd=2W=x.com=u@example.com",
		"SRS0+vmyz=2W=otherdomain.com=test@example.com",
		"srs0-VMYZ=2w=a.b=c=d=e@example.com",
		"SRS1=abcd=first.example@example.com",
		"SRS0====@",
		"SRS1===",
		"SRS0=vm/+=2W=a=b",
		"alice@origin.example",
		"",
		"@",
		"SRS0=\x00\xff=2W=a.b=c@example.com",
	} {
		f.Add(s)
	}
	r := newRewriter(f, Config{})
	f.Fuzz(func(t *testing.T, s string) {
		back, err := r.Reverse(s)
		if err == nil {
			if strings.Count(back, "@") != 1 || len(back) > len(s) {
				t.Fatalf("Reverse(%q) = %q", s, back)
			}
		} else if !errors.Is(err, ErrNotSRS) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrForged) && !errors.Is(err, ErrExpired) {
			t.Fatalf("Reverse(%q): unclassified error %v", s, err)
		}

		// As a sender: a local part and a domain out of the input.
		sender := s
		if !strings.Contains(sender, "@") {
			sender += "@origin.example"
		}
		fwd, err := r.Forward(sender)
		if err != nil || fwd == sender {
			return // unreadable or not rewritten: nothing to round-trip
		}
		if !r.Owns(fwd) {
			t.Fatalf("Forward(%q) = %q, outside the SRS domain", sender, fwd)
		}
		back, err = r.Reverse(fwd)
		if err != nil {
			if errors.Is(err, ErrMalformed) && (strings.ContainsAny(sender, " \t\r\n\x00\x7f") || strings.Count(sender, "@") > 1) {
				return // not a mailbox: Forward may write it, Reverse refuses it
			}
			t.Fatalf("Reverse(Forward(%q) = %q): %v", sender, fwd, err)
		}
		want := sender
		if _, ok := srsTag(sender[:strings.LastIndexByte(sender, '@')]); ok && strings.HasPrefix(fwd, "SRS1") {
			// SRS1 reverses to the first forwarder's SRS0 address.
			want = strings.ToUpper(sender[:4]) + sender[4:]
			if tag := sender[3]; tag == '1' {
				return // checked by TestGuarded: the first forwarder's address is rebuilt
			}
		}
		if back != want {
			t.Fatalf("Reverse(Forward(%q) = %q) = %q", sender, fwd, back)
		}
	})
}

func BenchmarkForward(b *testing.B) {
	r := newRewriter(b, Config{Now: time.Now})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Forward("Some.Sender+tag@origin.example.org"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReverse(b *testing.B) {
	for _, secrets := range []int{1, 3} {
		b.Run(strings.Repeat("s", secrets), func(b *testing.B) {
			list := []string{"first", "second", "third"}[:secrets]
			r := newRewriter(b, Config{Now: time.Now, Secrets: list})
			// Signed with the last secret: the worst case tries them all
			// (they always are, for constant time).
			signer := newRewriter(b, Config{Now: time.Now, Secrets: list[secrets-1:]})
			addr, _ := signer.Forward("Some.Sender+tag@origin.example.org")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Reverse(addr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
