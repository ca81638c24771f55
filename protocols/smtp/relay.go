package smtp

import (
	"strings"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/userdb"
)

// address is an envelope address that passed checkAddress.
type address struct {
	rawLocal string // the local part as the client wrote it
	local    string // lower-cased, as the directory keys it
	domain   string // lower-cased
}

func (a address) canonical() string { return a.local + "@" + a.domain }
func (a address) remote() string    { return a.rawLocal + "@" + a.domain }

// checkAddress refuses the address forms relay tricks are made of, each
// with its own reply, then checks the rest with userdb.Split, the one
// address parser. go-smtp has already removed a source route and the
// quotes of a quoted local part, so "user@other"@local arrives here as
// user@other@local. sender selects the MAIL FROM wording and code.
func checkAddress(addr string, sender bool) (address, *gosmtp.SMTPError) {
	refuse := func(code int, enhanced, msg string) (address, *gosmtp.SMTPError) {
		if sender {
			return address{}, smtpErr(553, "5.1.7", "Sender address rejected: "+msg)
		}
		return address{}, smtpErr(code, enhanced, "Recipient address rejected: "+msg)
	}
	for i := 0; i < len(addr); i++ {
		if c := addr[i]; c < 0x20 || c == 0x7f {
			return refuse(553, "5.1.3", "control character in address")
		}
	}
	if strings.Count(addr, "@") > 1 {
		return refuse(553, "5.1.3", "more than one @ (quoted or routed local parts are not accepted)")
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return refuse(553, "5.1.3", "no domain")
	}
	rawLocal, domain := addr[:at], addr[at+1:]
	switch {
	case strings.IndexByte(rawLocal, '%') >= 0:
		return refuse(554, "5.7.1", "percent-hack routing (user%host@domain) is not accepted")
	case strings.IndexByte(rawLocal, '!') >= 0:
		return refuse(554, "5.7.1", "bang-path routing (host!user@domain) is not accepted")
	case strings.HasPrefix(domain, "["):
		return refuse(550, "5.7.1", "address literals are not accepted")
	case strings.HasSuffix(domain, "."):
		return refuse(553, "5.1.3", "domain must not end with a dot")
	}
	local, dom, err := userdb.Split(addr)
	if err != nil {
		return refuse(553, "5.1.3", "bad address syntax")
	}
	return address{rawLocal: rawLocal, local: local, domain: dom}, nil
}
