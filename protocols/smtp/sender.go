package smtp

import (
	"fmt"
	"io"
	"mime"
	"net/mail"

	"github.com/emersion/go-message/textproto"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/userdb"
)

// Sender rights: an authenticated session may name as envelope sender, and
// in the From and Sender header fields, only addresses its account may use.
// The directory decides (userdb.Directory.MaySendAs); this file asks it and
// turns the answers into replies.

// checkEnvelopeSender checks MAIL FROM of an authenticated session.
func (ss *session) checkEnvelopeSender(from string, account *userdb.Account) *gosmtp.SMTPError {
	if from == "" {
		// A message without a return path cannot be bounced to anyone:
		// an authenticated user's mail always carries one of theirs.
		return errNullSender
	}
	ok, e := ss.maySendAs(account, from, "MAIL FROM")
	switch {
	case e != nil:
		return e
	case !ok:
		return smtpErr(553, "5.7.1", fmt.Sprintf("<%s>: Sender address rejected: not owned by user %s", from, account.Address))
	}
	return nil
}

// checkHeaderSenders checks the From header field (every address in it)
// and the Sender field when there is one, at the end of DATA. RFC 5322
// 3.6 allows one of each; a second one could show readers a sender nobody
// checked, so it is refused like an address that is not the user's.
func (ss *session) checkHeaderSenders(h *textproto.Header, account *userdb.Account) *gosmtp.SMTPError {
	for _, field := range []string{"From", "Sender"} {
		values := h.Values(field)
		switch {
		case len(values) > 1:
			return smtpErr(550, "5.7.1", fmt.Sprintf("Message has %d %s header fields, one is allowed", len(values), field))
		case len(values) == 0 && field == "From":
			return smtpErr(550, "5.7.1", "Message has no From header field")
		case len(values) == 0:
			continue
		}
		list, err := parseAddressList(values[0])
		if err != nil {
			ss.log.Info("header sender refused", "field", field, "user", account.Address, "err", err)
			return smtpErr(550, "5.7.1", field+" header field is not a valid address list")
		}
		if len(list) == 0 {
			return smtpErr(550, "5.7.1", field+" header field names no address")
		}
		for _, a := range list {
			ok, e := ss.maySendAs(account, a.Address, field)
			switch {
			case e != nil:
				return e
			case !ok:
				return smtpErr(550, "5.7.1", fmt.Sprintf("%s header address %s not owned by user %s", field, replyAddress(a.Address), account.Address))
			}
		}
	}
	return nil
}

// maySendAs asks the directory. Any failure is 451: only the directory's
// clear "no" refuses for good, so a broken or unreachable directory never
// makes a client give up on a message.
func (ss *session) maySendAs(account *userdb.Account, address, where string) (bool, *gosmtp.SMTPError) {
	ok, err := ss.srv.Directory.MaySendAs(ss.ctx(), account.Address, address)
	switch {
	case userdb.Temporary(err):
		ss.log.Warn("directory unavailable checking a sender", "where", where, "address", address, "err", err)
		return false, errDirectoryDown
	case err != nil:
		ss.log.Error("sender check failed", "where", where, "address", address, "err", err)
		return false, errDirectoryDown
	case !ok:
		ss.log.Info("sender not owned", "where", where, "address", address, "user", account.Address)
	}
	return ok, nil
}

// parseAddressList reads an address-list header field with net/mail. Only
// the addresses matter here, so an encoded display name in a charset Go
// cannot decode is left as it is instead of failing the whole field.
func parseAddressList(value string) ([]*mail.Address, error) {
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{
		CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
	}}
	return p.ParseList(value)
}

// replyAddress puts an address from the message into a reply only in its
// canonical form; anything else is not echoed.
func replyAddress(a string) string {
	c, err := userdb.Canonical(a)
	if err != nil {
		return "(malformed)"
	}
	return "<" + c + ">"
}
