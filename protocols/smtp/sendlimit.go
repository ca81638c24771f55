package smtp

import (
	"errors"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/protocols/sendlimit"
	"github.com/vmaild/vmaild/userdb"
)

// Replies to an authenticated sender over a sending limit (package
// sendlimit). The hourly limits answer 450 4.7.1 at MAIL (messages) and at
// RCPT (recipients): a temporary refusal, so the client's queue retries
// once the window has room, and mail is delayed, never lost. Recipients
// of one message over the limit answer 452 4.5.3 at RCPT: RFC 5321
// 4.5.3.1.10 asks for 452 when a recipient limit is reached, and the
// client then sends the remaining recipients in another transaction
// (RFC 3463: X.5.3 is "too many recipients").
func limitReply(r *sendlimit.Refusal) *gosmtp.SMTPError {
	if r.PerMessage() {
		return smtpErr(452, "4.5.3", "Too many recipients for one message, send the rest in another")
	}
	return smtpErr(450, "4.7.1", "Sending limit reached, try again later")
}

// beginLimited charges a message to account, or says why not.
func (ss *session) beginLimited(account string) (*sendlimit.Tx, *gosmtp.SMTPError) {
	ctx, cancel := userdb.Bound(ss.ctx(), ss.srv.Directory)
	defer cancel()
	lt, err := ss.srv.SendLimits.Begin(ctx, account)
	if err == nil {
		return lt, nil
	}
	var r *sendlimit.Refusal
	if errors.As(err, &r) {
		ss.log.Warn("sending limit reached", "user", account, "limit", r.Limit, "max", r.Max, "key", r.Key)
		return nil, limitReply(r)
	}
	ss.log.Warn("directory unavailable for sending limits", "user", account, "err", err)
	return nil, errDirectoryDown
}

// chargeRecipient charges one accepted recipient, or refuses it.
func (ss *session) chargeRecipient(lt *sendlimit.Tx, to string) *gosmtp.SMTPError {
	err := lt.Recipient()
	if err == nil {
		return nil
	}
	var r *sendlimit.Refusal
	if !errors.As(err, &r) {
		return errDirectoryDown
	}
	ss.mu.Lock()
	user := ""
	if ss.account != nil {
		user = ss.account.Address
	}
	ss.mu.Unlock()
	ss.log.Warn("sending limit reached", "user", user, "rcpt", to, "limit", r.Limit, "max", r.Max, "key", r.Key)
	return limitReply(r)
}
