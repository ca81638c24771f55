package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

// The error classes. Every error returned by this package wraps one of them
// (or a context error).
var (
	// ErrNotFound: the account's maildir, the folder or the message (already
	// expunged) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: the folder to create or rename to is already there.
	ErrExists = errors.New("already exists")
	// ErrInvalid: a folder name, address or argument the store refuses
	// (escapes the tree, collides, NUL, too long, deleting INBOX …).
	ErrInvalid = errors.New("invalid argument")
	// ErrOverQuota: the message does not fit in the account's quota (or the
	// file system's EDQUOT). IMAP answers NO [OVERQUOTA], SMTP 552 5.2.2.
	ErrOverQuota = errors.New("over quota")
	// ErrTemporary: an I/O failure or a lock timeout; try again later
	// (SMTP 4xx, IMAP NO [UNAVAILABLE]).
	ErrTemporary = errors.New("temporary failure")
)

// Temporary reports whether err means "try again later".
func Temporary(err error) bool { return errors.Is(err, ErrTemporary) }

// ioError classifies an operating-system error once, at the boundary:
// missing files are ErrNotFound, EDQUOT is ErrOverQuota, everything else
// (ENOSPC, EIO, permissions …) is temporary, because none of it is the
// sender's or client's fault.
func ioError(op, path string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrTemporary),
		errors.Is(err, ErrOverQuota), errors.Is(err, ErrExists), errors.Is(err, ErrInvalid),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s %s: %w", op, path, err)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s %s: %w: %w", op, path, ErrNotFound, err)
	case errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%s %s: %w: %w", op, path, ErrOverQuota, err)
	default:
		return fmt.Errorf("%s %s: %w: %w", op, path, ErrTemporary, err)
	}
}
