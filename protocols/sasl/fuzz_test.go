package sasl

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzExchange runs PLAIN and LOGIN exchanges on fuzzed client responses
// (nil is "no initial response") and holds them to an independent reading
// of RFC 4616 and the LOGIN draft: the password is checked at most once,
// only with fields that are valid (non-empty, UTF-8, no NUL, at most
// MaxField octets, authzid empty or the username) and exactly the ones the
// client sent; every refusal of a response wraps ErrMalformed; an
// exchange that is done stays done.
func FuzzExchange(f *testing.F) {
	f.Add(true, false, []byte("\x00bob@example.org\x00secret"), []byte(nil), []byte(nil))
	f.Add(true, false, []byte("bob@example.org\x00bob@example.org\x00secret"), []byte(nil), []byte(nil))
	f.Add(true, true, []byte(nil), []byte("\x00a\x00b\x00c"), []byte("x"))
	f.Add(false, true, []byte(nil), []byte("bob@example.org"), []byte("secret"))
	f.Add(false, false, []byte("bob@example.org"), []byte("secret"), []byte("more"))
	f.Add(false, false, []byte(""), []byte("\xff"), []byte("a\x00b"))
	f.Fuzz(func(t *testing.T, plain, noInitial bool, r1, r2, r3 []byte) {
		mech := Login
		if plain {
			mech = Plain
		}
		var calls [][2]string
		auth := func(ctx context.Context, u, p string) error {
			calls = append(calls, [2]string{u, p})
			return errBadPassword
		}
		srv, err := NewServer(context.Background(), mech, true, auth)
		if err != nil {
			t.Fatal(err)
		}
		responses := [][]byte{r1, r2, r3}
		if noInitial {
			responses[0] = nil
		} else if responses[0] == nil {
			responses[0] = []byte{}
		}
		var sent [][]byte // responses the mechanism took
		done := false
		for i, r := range responses {
			_, d, err := srv.Next(r)
			if done {
				if err == nil {
					t.Fatalf("response %d accepted after the exchange ended", i+1)
				}
				continue
			}
			if r != nil {
				sent = append(sent, r)
			}
			checked := len(calls)
			switch {
			case err == nil:
			case errors.Is(err, errBadPassword):
				if checked == 0 {
					t.Fatalf("a password failure without a check: %v", err)
				}
			case !errors.Is(err, ErrMalformed):
				t.Fatalf("response %d %q refused without ErrMalformed: %v", i+1, r, err)
			}
			done = d || err != nil
		}
		if len(calls) > 1 {
			t.Fatalf("password checked %d times", len(calls))
		}
		if len(calls) == 0 {
			return
		}
		u, p := calls[0][0], calls[0][1]
		for _, field := range []string{u, p} {
			if field == "" || len(field) > MaxField || !utf8.ValidString(field) || bytes.IndexByte([]byte(field), 0) >= 0 {
				t.Fatalf("checked with an invalid field %q", field)
			}
		}
		if plain {
			fields := bytes.Split(sent[0], []byte{0})
			if len(sent) != 1 || len(fields) != 3 || string(fields[1]) != u || string(fields[2]) != p ||
				len(fields[0]) > 0 && string(fields[0]) != u {
				t.Fatalf("PLAIN %q checked as %q / %q", sent, u, p)
			}
		} else if len(sent) < 2 || string(sent[0]) != u || string(sent[1]) != p {
			t.Fatalf("LOGIN %q checked as %q / %q", sent, u, p)
		}
	})
}
