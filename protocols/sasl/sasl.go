// Package sasl is the one place vmaild makes SASL mechanisms for SMTP AUTH,
// IMAP AUTHENTICATE and POP3 AUTH, so every protocol accepts exactly the same
// client responses and checks passwords the same way.
//
// Only password mechanisms exist: PLAIN (RFC 4616) through go-sasl, and
// LOGIN (draft-murchison-sasl-login), which go-sasl offers only as a client
// and is therefore written here. Both send the password in the clear, so
// Mechanisms offers none of them unless the connection is TLS or the
// listener is explicitly insecure.
//
// The protocol layer owns base64 and the "*" cancel; this package sees
// decoded client responses and returns go-sasl's Server so it plugs into
// go-smtp and go-imap unchanged.
package sasl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"unicode/utf8"

	gosasl "github.com/emersion/go-sasl"

	"github.com/vmaild/vmaild/protocols/login"
)

// Mechanism names.
const (
	Plain = gosasl.Plain
	Login = gosasl.Login
)

// MaxField is the longest username, authorization identity or password
// accepted, in octets. RFC 4616 asks servers to take at least 255; real
// passwords and addresses fit well within this, and refusing longer ones
// keeps junk away from the directory.
const MaxField = 1024

// Authenticator checks a username and password. It returns nil on success or
// an error the protocol maps to a reply: userdb.ErrUnavailable-wrapped means
// try later, anything else means no. ctx is the connection's context.
type Authenticator func(ctx context.Context, username, password string) error

// Guarded returns an Authenticator that runs a as one attempt of a client
// at ip through the login service g (throttling, the bound on concurrent
// verifications, dummy verifications; see protocols/login). A nil g
// guards nothing, for tests of the protocols alone.
func (a Authenticator) Guarded(g login.Guard, ip netip.Addr) Authenticator {
	if g == nil {
		return a
	}
	return func(ctx context.Context, username, password string) error {
		return g.Attempt(ctx, ip, username, password, a)
	}
}

// ErrMalformed is wrapped by every error about a client response that does
// not follow the mechanism's syntax; the password was never checked.
var ErrMalformed = errors.New("malformed SASL response")

// ErrUnsupported is returned by NewServer for an unknown or disallowed
// mechanism.
var ErrUnsupported = errors.New("unsupported SASL mechanism")

// Mechanisms lists the mechanisms to advertise. tlsOrInsecure is true when
// the connection is TLS or the listener allows plaintext auth; otherwise
// nothing is offered, since every mechanism here reveals the password.
func Mechanisms(tlsOrInsecure bool) []string {
	if !tlsOrInsecure {
		return nil
	}
	return []string{Plain, Login}
}

// NewServer starts one authentication exchange for mech (case-sensitive, as
// advertised) and checks the credentials with auth under ctx.
func NewServer(ctx context.Context, mech string, tlsOrInsecure bool, auth Authenticator) (gosasl.Server, error) {
	if !tlsOrInsecure {
		return nil, fmt.Errorf("%w: %s needs TLS", ErrUnsupported, mech)
	}
	switch mech {
	case Plain:
		return &plainServer{inner: gosasl.NewPlainServer(func(identity, username, password string) error {
			if err := checkPlain(identity, username, password); err != nil {
				return err
			}
			return auth(ctx, username, password)
		})}, nil
	case Login:
		return &loginServer{ctx: ctx, auth: auth}, nil
	}
	return nil, ErrUnsupported
}

// plainServer puts a precise ErrMalformed on responses go-sasl would only
// call "invalid" (anything but exactly two NULs), then lets go-sasl parse.
type plainServer struct {
	inner gosasl.Server
	done  bool
}

func (s *plainServer) Next(response []byte) (challenge []byte, done bool, err error) {
	if s.done {
		return nil, true, gosasl.ErrUnexpectedClientResponse
	}
	if response != nil {
		s.done = true
		if n := bytes.Count(response, []byte{0}); n != 2 {
			return nil, true, fmt.Errorf("%w: PLAIN needs authzid NUL authcid NUL passwd, got %d NULs", ErrMalformed, n)
		}
	}
	return s.inner.Next(response)
}

// checkPlain enforces RFC 4616 on the three fields: a NUL inside a name
// cannot be told from an extra field and was refused by plainServer.
func checkPlain(identity, username, password string) error {
	switch {
	case username == "":
		return fmt.Errorf("%w: empty authentication identity", ErrMalformed)
	case password == "":
		return fmt.Errorf("%w: empty password", ErrMalformed)
	case len(identity) > MaxField || len(username) > MaxField || len(password) > MaxField:
		return fmt.Errorf("%w: field longer than %d octets", ErrMalformed, MaxField)
	case !utf8.ValidString(identity) || !utf8.ValidString(username) || !utf8.ValidString(password):
		return fmt.Errorf("%w: not UTF-8", ErrMalformed)
	case identity != "" && identity != username:
		// Nobody may act for another user: there are no admin proxies.
		return fmt.Errorf("%w: authorization identity must be empty or equal the username", ErrMalformed)
	}
	return nil
}

// loginServer is LOGIN: the server prompts "Username:" and "Password:"; an
// initial response, if any, is the username.
type loginServer struct {
	ctx      context.Context
	auth     Authenticator
	step     int // 0: start, 1: have asked for username, 2: have asked for password, 3: done
	username string
}

var (
	promptUsername = []byte("Username:")
	promptPassword = []byte("Password:")
)

func (s *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.step {
	case 0:
		if response == nil {
			s.step = 1
			return promptUsername, false, nil
		}
		s.step = 1
		fallthrough
	case 1:
		if err := checkLoginField("username", response); err != nil {
			s.step = 3
			return nil, true, err
		}
		s.username = string(response)
		s.step = 2
		return promptPassword, false, nil
	case 2:
		s.step = 3
		if err := checkLoginField("password", response); err != nil {
			return nil, true, err
		}
		return nil, true, s.auth(s.ctx, s.username, string(response))
	}
	return nil, true, gosasl.ErrUnexpectedClientResponse
}

func checkLoginField(what string, v []byte) error {
	switch {
	case len(v) == 0:
		return fmt.Errorf("%w: empty %s", ErrMalformed, what)
	case len(v) > MaxField:
		return fmt.Errorf("%w: %s longer than %d octets", ErrMalformed, what, MaxField)
	case bytes.IndexByte(v, 0) >= 0:
		return fmt.Errorf("%w: NUL in %s", ErrMalformed, what)
	case !utf8.Valid(v):
		return fmt.Errorf("%w: %s not UTF-8", ErrMalformed, what)
	}
	return nil
}
