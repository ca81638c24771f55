package smtp

import (
	"context"
	"errors"
	"net/netip"

	gosmtp "github.com/emersion/go-smtp"
)

// Screen judges a client of the MTA at each RCPT, after the address and
// relay checks: DNS blocklists and greylisting plug in here, as Postfix's
// smtpd_recipient_restrictions hold reject_rbl_client and the policy
// service. A nil error lets the recipient through; an error whose
// Temporary method says true is answered 451 4.7.1, any other 554 5.7.1,
// both with the error's text, which must name the reason (the blocklist
// zone, the greylisting delay).
type Screen interface {
	ScreenRcpt(ctx context.Context, ip netip.Addr, helo, from, rcpt string) error
}

// screen runs the server's screens for an MTA recipient. Authenticated
// clients, MyNetworks and other roles are never screened.
func (ss *session) screen(tx *transaction, rc recipient) *gosmtp.SMTPError {
	if ss.srv.Role != RoleMTA || len(ss.srv.Screens) == 0 || ss.srv.trusted(ss.tc.ip) {
		return nil
	}
	ss.mu.Lock()
	authed := ss.account != nil
	ss.mu.Unlock()
	if authed {
		return nil
	}
	for _, s := range ss.srv.Screens {
		err := s.ScreenRcpt(ss.ctx(), ss.tc.ip, cleanHelo(ss.conn.Hostname()), tx.from, rc.addr)
		if err == nil {
			continue
		}
		var temp interface{ Temporary() bool }
		if errors.As(err, &temp) && temp.Temporary() {
			ss.log.Info("recipient deferred", "rcpt", rc.addr, "reason", err.Error())
			return smtpErr(451, "4.7.1", err.Error())
		}
		ss.log.Info("client refused", "rcpt", rc.addr, "reason", err.Error())
		return smtpErr(554, "5.7.1", err.Error())
	}
	return nil
}
