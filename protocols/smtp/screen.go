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
	// Name names the screen in logs and metrics ("dnsbl", "greylist").
	Name() string
	ScreenRcpt(ctx context.Context, ip netip.Addr, helo, from, rcpt string) error
}

// Results of a screen, as Server.Screened receives them.
const (
	ScreenPassed   = "pass"
	ScreenDeferred = "defer"
	ScreenRefused  = "refuse"
)

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
			ss.srv.screened(s.Name(), ScreenPassed)
			continue
		}
		var temp interface{ Temporary() bool }
		if errors.As(err, &temp) && temp.Temporary() {
			ss.srv.screened(s.Name(), ScreenDeferred)
			ss.log.Info("recipient deferred", "screen", s.Name(), "rcpt", rc.addr, "reason", err.Error())
			return smtpErr(451, "4.7.1", err.Error())
		}
		ss.srv.screened(s.Name(), ScreenRefused)
		ss.log.Info("client refused", "screen", s.Name(), "rcpt", rc.addr, "reason", err.Error())
		return smtpErr(554, "5.7.1", err.Error())
	}
	return nil
}

// screened reports one screen's result to Server.Screened.
func (s *Server) screened(screen, result string) {
	if s.Screened != nil {
		s.Screened(screen, result)
	}
}
