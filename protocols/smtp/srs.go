package smtp

import (
	"errors"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/srs"
)

// reverseSRS turns a recipient in our SRS domain back into the address it
// stands for: the original sender of mail we forwarded, whose bounce this
// is. A valid one is then routed like any recipient, relayed without the
// relay check since our own hash vouches for it; a forged or expired one
// is refused here, so it is never relayed nor bounced.
func (ss *session) reverseSRS(a address) (address, *gosmtp.SMTPError) {
	orig, err := ss.srv.SRS.Reverse(a.remote())
	if err != nil {
		ss.log.Info("SRS recipient refused", "rcpt", a.remote(), "err", err)
		why := "invalid SRS address"
		switch {
		case errors.Is(err, srs.ErrForged):
			why = "forged SRS address"
		case errors.Is(err, srs.ErrExpired):
			why = "expired SRS address"
		}
		return address{}, smtpErr(550, "5.7.1", "Recipient address rejected: "+why+": "+err.Error())
	}
	b, e := checkAddress(orig, false)
	if e != nil {
		// Our hash verified an address our own parser refuses: refuse it
		// the same way as a forgery rather than relay it.
		ss.log.Warn("SRS recipient reverses to an unusable address", "rcpt", a.remote(), "orig", orig, "reply", e.Message)
		return address{}, smtpErr(550, "5.7.1", "Recipient address rejected: invalid SRS address: the original address is not usable")
	}
	ss.log.Info("SRS recipient reversed", "rcpt", a.remote(), "orig", b.remote())
	return b, nil
}
