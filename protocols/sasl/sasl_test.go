package sasl

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	gosasl "github.com/emersion/go-sasl"

	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/userdb"
)

var errBadPassword = fmt.Errorf("check: %w", userdb.ErrBadCredentials)

// recorder is an Authenticator that accepts bob/secret and remembers calls.
type recorder struct{ calls []string }

func (r *recorder) auth(ctx context.Context, username, password string) error {
	if ctx == nil {
		panic("nil context")
	}
	r.calls = append(r.calls, username)
	if username == "bob@example.org" && password == "secret" {
		return nil
	}
	return errBadPassword
}

func TestMechanisms(t *testing.T) {
	if m := Mechanisms(false); len(m) != 0 {
		t.Fatalf("plaintext connection offered %v", m)
	}
	if m := Mechanisms(true); !slices.Equal(m, []string{"PLAIN", "LOGIN"}) {
		t.Fatalf("got %v", m)
	}
	if _, err := NewServer(context.Background(), Plain, false, nil); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("PLAIN without TLS: %v", err)
	}
	if _, err := NewServer(context.Background(), "CRAM-MD5", true, nil); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unknown mechanism: %v", err)
	}
	if _, err := NewServer(context.Background(), "plain", true, nil); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("mechanism names are matched as advertised by the protocol layer: %v", err)
	}
}

func TestPlain(t *testing.T) {
	long := strings.Repeat("a", 10*1024)
	tests := []struct {
		name      string
		response  string
		want      error // nil: success
		wantCheck bool  // the authenticator was consulted
	}{
		{"good, empty authzid", "\x00bob@example.org\x00secret", nil, true},
		{"good, authzid equals authcid", "bob@example.org\x00bob@example.org\x00secret", nil, true},
		{"wrong password", "\x00bob@example.org\x00wrong", userdb.ErrBadCredentials, true},
		{"password with spaces and 8-bit", "\x00bob@example.org\x00pässwörd mit leer", userdb.ErrBadCredentials, true},
		{"authzid of another user", "alice@example.org\x00bob@example.org\x00secret", ErrMalformed, false},
		{"no NUL", "bob@example.org secret", ErrMalformed, false},
		{"one NUL", "bob@example.org\x00secret", ErrMalformed, false},
		{"extra field", "\x00bob@example.org\x00secret\x00more", ErrMalformed, false},
		{"NUL inside username", "\x00bob\x00@example.org\x00secret", ErrMalformed, false},
		{"empty username", "\x00\x00secret", ErrMalformed, false},
		{"empty password", "\x00bob@example.org\x00", ErrMalformed, false},
		{"empty response", "", ErrMalformed, false},
		{"10 KB username", "\x00" + long + "\x00secret", ErrMalformed, false},
		{"10 KB password", "\x00bob@example.org\x00" + long, ErrMalformed, false},
		{"10 KB authzid", long + "\x00bob@example.org\x00secret", ErrMalformed, false},
		{"invalid UTF-8", "\x00bob\xff@example.org\x00secret", ErrMalformed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recorder
			s, err := NewServer(context.Background(), Plain, true, r.auth)
			if err != nil {
				t.Fatal(err)
			}
			// Without an initial response the server asks with an empty challenge.
			ch, done, err := s.Next(nil)
			if err != nil || done || len(ch) != 0 {
				t.Fatalf("first step: %q %v %v", ch, done, err)
			}
			_, done, err = s.Next([]byte(tt.response))
			if !done {
				t.Fatal("exchange not done")
			}
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if got := len(r.calls) > 0; got != tt.wantCheck {
				t.Fatalf("authenticator consulted: %v, want %v", got, tt.wantCheck)
			}
			// A further response is a protocol error, never a second check.
			if _, _, err := s.Next([]byte("\x00bob@example.org\x00secret")); err == nil {
				t.Fatal("response after done accepted")
			}
			if len(r.calls) > 1 {
				t.Fatal("authenticator called twice")
			}
		})
	}
}

func TestPlainInitialResponse(t *testing.T) {
	var r recorder
	s, _ := NewServer(context.Background(), Plain, true, r.auth)
	if _, done, err := s.Next([]byte("\x00bob@example.org\x00secret")); !done || err != nil {
		t.Fatalf("done %v err %v", done, err)
	}
}

func TestLogin(t *testing.T) {
	long := strings.Repeat("b", 10*1024)
	tests := []struct {
		name      string
		ir        []byte // nil: none
		steps     []string
		want      error
		wantCheck bool
	}{
		{"good", nil, []string{"bob@example.org", "secret"}, nil, true},
		{"good with initial response", []byte("bob@example.org"), []string{"secret"}, nil, true},
		{"wrong password", nil, []string{"bob@example.org", "nope"}, userdb.ErrBadCredentials, true},
		{"empty username", nil, []string{""}, ErrMalformed, false},
		{"empty initial response", []byte{}, nil, ErrMalformed, false},
		{"empty password", nil, []string{"bob@example.org", ""}, ErrMalformed, false},
		{"NUL in username", nil, []string{"bob\x00x"}, ErrMalformed, false},
		{"NUL in password", nil, []string{"bob@example.org", "se\x00cret"}, ErrMalformed, false},
		{"10 KB username", nil, []string{long}, ErrMalformed, false},
		{"10 KB password", nil, []string{"bob@example.org", long}, ErrMalformed, false},
		{"invalid UTF-8", nil, []string{"bob\xc3"}, ErrMalformed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recorder
			s, err := NewServer(context.Background(), Login, true, r.auth)
			if err != nil {
				t.Fatal(err)
			}
			ch, done, err := s.Next(tt.ir)
			responses := tt.steps
			if tt.ir == nil {
				if string(ch) != "Username:" || done || err != nil {
					t.Fatalf("first challenge %q %v %v", ch, done, err)
				}
			} else if err == nil && string(ch) != "Password:" {
				t.Fatalf("after initial response: %q", ch)
			}
			for i := 0; err == nil && !done && i < len(responses); i++ {
				ch, done, err = s.Next([]byte(responses[i]))
				if !done && err == nil && string(ch) != "Password:" {
					t.Fatalf("challenge %q", ch)
				}
			}
			if !done {
				t.Fatal("exchange not done")
			}
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if got := len(r.calls) > 0; got != tt.wantCheck {
				t.Fatalf("authenticator consulted: %v", got)
			}
			if _, _, err := s.Next([]byte("x")); err == nil {
				t.Fatal("response after done accepted")
			}
		})
	}
}

// TestGuarded proves the wrapper runs every exchange through the login
// service, which counts the attempts.
func TestGuarded(t *testing.T) {
	g, err := login.New(login.Config{DummyScheme: "SSHA"})
	if err != nil {
		t.Fatal(err)
	}
	var r recorder
	ip := netip.MustParseAddr("198.51.100.7")
	a := Authenticator(r.auth).Guarded(g, ip)
	s, _ := NewServer(context.Background(), Plain, true, a)
	if _, _, err := s.Next([]byte("\x00bob@example.org\x00wrong")); err == nil {
		t.Fatal("wrong password accepted")
	}
	s, _ = NewServer(context.Background(), Login, true, a)
	s.Next(nil)
	s.Next([]byte("bob@example.org"))
	if _, _, err := s.Next([]byte("secret")); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if st := g.Stats(); st.OK != 1 || st.Failed != 1 || len(r.calls) != 2 {
		t.Fatalf("login service saw %+v, directory %d calls", st, len(r.calls))
	}
	var _ gosasl.Server = s
}

func BenchmarkPlain(b *testing.B) {
	auth := func(context.Context, string, string) error { return nil }
	resp := []byte("\x00bob@example.org\x00secret")
	for b.Loop() {
		s, _ := NewServer(context.Background(), Plain, true, auth)
		s.Next(resp)
	}
}
