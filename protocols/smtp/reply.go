package smtp

import (
	"strings"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/delivery"
)

// replies is the one mapping of delivery outcomes to SMTP and LMTP
// replies (and so to the status of a bounce).
var (
	temporaryReplies = map[delivery.Cause]*gosmtp.SMTPError{
		delivery.MailboxFull:   smtpErr(452, "4.2.2", "Mailbox full"),
		delivery.OverQuota:     smtpErr(452, "4.2.2", "Message would exceed the mailbox quota, try again later"),
		delivery.DirectoryDown: smtpErr(451, "4.3.0", "Directory temporarily unavailable, try again later"),
		delivery.StoreFailed:   smtpErr(451, "4.3.0", "Local delivery failed temporarily, try again later"),
		delivery.DiskFull:      smtpErr(452, "4.3.1", "Insufficient system storage, try again later"),
		delivery.QueueFailed:   smtpErr(451, "4.3.0", "Could not queue the message, try again later"),
		delivery.TimedOut:      smtpErr(451, "4.3.0", "Delivery took too long, try again later"),
		delivery.Rejected:      smtpErr(451, "4.7.1", "Refused for now, try again later"),
	}
	permanentReplies = map[delivery.Cause]*gosmtp.SMTPError{
		delivery.NoSuchUser:  smtpErr(550, "5.1.1", "No such user here"),
		delivery.Disabled:    smtpErr(550, "5.2.1", "Mailbox disabled"),
		delivery.BadAddress:  smtpErr(553, "5.1.3", "Bad recipient address syntax"),
		delivery.MailboxFull: smtpErr(552, "5.2.2", "Mailbox full"),
		delivery.OverQuota:   smtpErr(552, "5.2.2", "Message would exceed the mailbox quota"),
		delivery.Loop:        smtpErr(554, "5.4.6", "Mail loop detected"),
		delivery.AliasLoop:   smtpErr(554, "5.4.6", "Alias expansion loop"),
		delivery.RelayDenied: smtpErr(554, "5.7.1", "Relay access denied"),
		delivery.Rejected:    smtpErr(550, "5.7.1", "Refused"),
	}
	replyAccepted  = smtpErr(250, "2.1.5", "Recipient OK")
	replyDelivered = smtpErr(250, "2.0.0", "Delivered")
	replyQueued    = smtpErr(250, "2.0.0", "Queued for delivery")
	replyTempOther = smtpErr(451, "4.3.0", "Temporary local problem, try again later")
	replyPermOther = smtpErr(554, "5.0.0", "Delivery failed")
)

// Reply is the reply for a delivery outcome: what RCPT, DATA and LMTP
// answer, and what the queue puts in a bounce for a local recipient. A
// 2xx comes back as an SMTPError too, so its text reaches the client.
func Reply(o delivery.Outcome) *gosmtp.SMTPError {
	var r *gosmtp.SMTPError
	switch o.Kind {
	case delivery.Accepted:
		return replyAccepted
	case delivery.Delivered:
		return replyDelivered
	case delivery.Queued:
		return replyQueued
	case delivery.Permanent:
		if r = permanentReplies[o.Cause]; r == nil {
			r = replyPermOther
		}
	default:
		if r = temporaryReplies[o.Cause]; r == nil {
			r = replyTempOther
		}
	}
	if o.Text != "" {
		c := *r
		c.Message = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return ' ' // a filter's words must not break the reply
			}
			return r
		}, o.Text)
		return &c
	}
	return r
}
