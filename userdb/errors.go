package userdb

import (
	"errors"
	"fmt"
)

// The error classes. Backends wrap one of these (with %w) and the protocol
// layer maps the class to a reply: ErrUnavailable → 4xx / NO [UNAVAILABLE],
// the others → 5xx / NO.
var (
	ErrNotFound       = errors.New("not found")
	ErrBadCredentials = errors.New("bad credentials")
	ErrDisabled       = errors.New("disabled")
	ErrUnavailable    = errors.New("directory temporarily unavailable")
	ErrAliasLoop      = errors.New("alias loop")
	ErrInvalid        = errors.New("invalid address")
	ErrExists         = errors.New("already exists")
)

// Temporary reports whether err means "try again later".
func Temporary(err error) bool { return errors.Is(err, ErrUnavailable) }

// Unavailable wraps a backend failure (network, timeout, server down) as
// temporary, keeping the cause for the log.
func Unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}
