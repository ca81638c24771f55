package vacation

import (
	"net/mail"
	"net/textproto"
	"strings"

	"github.com/vmaild/vmaild/backend/delivery"
)

// systemSender says whether the envelope sender is one RFC 5230 section
// 4.6 (and RFC 3834 section 2) forbids answering: mailer daemons and the
// addresses of list software. It takes a lower-case address.
func systemSender(sender string) bool {
	local, _, _ := strings.Cut(sender, "@")
	switch local {
	case "mailer-daemon", "listserv", "majordomo":
		return true
	}
	// Pigeonhole's list, and Mailman's list-bounces@.
	return strings.HasPrefix(local, "owner-") || strings.HasSuffix(local, "-request") ||
		strings.HasSuffix(local, "-bounces")
}

// autoHeader names the header field that marks h as sent by a machine or
// to a list, or "" when none does (RFC 3834 section 2, RFC 5230 section
// 4.6, and Microsoft's X-Auto-Response-Suppress).
func autoHeader(h textproto.MIMEHeader) string {
	for _, v := range h.Values("Auto-Submitted") {
		kw, _, _ := strings.Cut(v, ";")
		if !strings.EqualFold(strings.TrimSpace(kw), "no") {
			return "Auto-Submitted"
		}
	}
	for _, v := range h.Values("Precedence") {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "bulk", "list", "junk":
			return "Precedence"
		}
	}
	for _, v := range h.Values("X-Auto-Response-Suppress") {
		for _, f := range strings.Split(v, ",") {
			switch strings.ToLower(strings.TrimSpace(f)) {
			case "all", "oof", "autoreply":
				return "X-Auto-Response-Suppress"
			}
		}
	}
	for name := range h {
		// List-Id, List-Post, List-Unsubscribe … (RFC 2369, 2919).
		if strings.HasPrefix(name, "List-") {
			return name
		}
	}
	return ""
}

// addressedTo says whether one of addrs (lower case) is in the message's
// To, Cc or Bcc, or their Resent- forms: a reply to mail the user got by
// Bcc from a list, or through an alias they did not name, is not due
// (RFC 5230 section 4.5). A field that does not parse as an address list
// is searched as text rather than ignored.
func addressedTo(h textproto.MIMEHeader, addrs []string) bool {
	for _, name := range []string{"To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc"} {
		for _, v := range h.Values(name) {
			list, err := mail.ParseAddressList(v)
			if err != nil {
				low := strings.ToLower(v)
				for _, a := range addrs {
					if strings.Contains(low, a) {
						return true
					}
				}
				continue
			}
			for _, got := range list {
				g := strings.ToLower(got.Address)
				for _, a := range addrs {
					if g == a {
						return true
					}
				}
			}
		}
	}
	return false
}

// spam says whether the inbound checks called the message spam or found a
// virus: a reply would go to a forged sender (backscatter).
func spam(v *delivery.Verdict) bool {
	if v == nil {
		return false
	}
	return v.Junk || v.Virus.Found != "" || v.SpamTest() >= 6 || (v.Spam.Checked && v.Spam.Flag)
}
