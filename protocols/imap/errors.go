package imap

import (
	"context"
	"errors"
	"strconv"
	"strings"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
)

func imapErr(typ goimap.StatusResponseType, code goimap.ResponseCode, text string) *goimap.Error {
	return &goimap.Error{Type: typ, Code: code, Text: text}
}

func no(code goimap.ResponseCode, text string) *goimap.Error {
	return imapErr(goimap.StatusResponseTypeNo, code, text)
}

func bad(text string) *goimap.Error {
	return imapErr(goimap.StatusResponseTypeBad, goimap.ResponseCodeClientBug, text)
}

var (
	errAuthFailed  = no(goimap.ResponseCodeAuthenticationFailed, "Authentication failed")
	errDirectory   = no(goimap.ResponseCodeUnavailable, "User directory unavailable, try again later")
	errBusy        = no(goimap.ResponseCodeUnavailable, "Too many logins at once, try again later")
	errMailboxDown = no(goimap.ResponseCodeUnavailable, "Mailbox unavailable, try again later")
	errNoSelection = bad("No mailbox selected")
)

// storeError maps a store error class to a reply; the details (paths) go
// to the log only.
func (c *conn) storeError(op string, err error) error {
	var ie *goimap.Error
	switch {
	case errors.As(err, &ie):
		return err
	case errors.Is(err, store.ErrNotFound):
		return no(goimap.ResponseCodeNonExistent, "No such mailbox")
	case errors.Is(err, store.ErrExists):
		return no(goimap.ResponseCodeAlreadyExists, "Mailbox already exists")
	case errors.Is(err, store.ErrOverQuota):
		return no(goimap.ResponseCodeOverQuota, "Quota exceeded")
	case errors.Is(err, store.ErrInvalid):
		c.log.Info("imap "+op+" refused", "err", err)
		return no(goimap.ResponseCodeCannot, "Not possible: "+invalidReason(err))
	case store.Temporary(err), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		c.log.Warn("imap "+op+" failed", "err", err)
		return no(goimap.ResponseCodeUnavailable, "Temporary failure, try again later")
	}
	c.log.Error("imap "+op+" failed", "err", err)
	return no(goimap.ResponseCodeServerBug, "Internal error")
}

// invalidReason keeps the part of an ErrInvalid message that speaks about
// the client's argument, not about the server's directories.
func invalidReason(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, store.ErrInvalid.Error()+": "); i >= 0 {
		msg = msg[i+len(store.ErrInvalid.Error())+2:]
	}
	if strings.Contains(msg, "/") && strings.Contains(msg, "maildir") {
		return "invalid argument"
	}
	return msg
}

func uitoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
