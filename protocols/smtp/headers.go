package smtp

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/delivery"
)

// rfc5322Date is the date-time format of RFC 5322 3.3.
const rfc5322Date = "Mon, 02 Jan 2006 15:04:05 -0700"

var errBadHeader = smtpErr(554, "5.6.0", "Message header is malformed")

// received appends this hop's Received header (RFC 5321 4.4) to b, from
// the envelope's facts. It names the client's greeting and address, the
// protocol in RFC 3848 / RFC 6531 terms, the TLS parameters, the session id
// and, for a single recipient, that recipient. The authenticated user is
// not named: it is nobody's business downstream.
func (ss *session) received(b []byte, env *delivery.Envelope, tx *transaction) []byte {
	b = append(b, "Received: from "...)
	b = append(b, env.Helo...)
	if env.ClientIP.IsValid() {
		b = append(b, " (["...)
		if env.ClientIP.Is6() {
			b = append(b, "IPv6:"...)
		}
		b = append(b, env.ClientIP.String()...)
		b = append(b, "])"...)
	} else {
		b = append(b, " (local socket)"...)
	}
	b = append(b, "\r\n\tby "...)
	b = append(b, ss.srv.Hostname...)
	b = append(b, " (vmaild) with "...)
	b = append(b, protocolName(env.Role == delivery.RoleLMTP, tx.utf8, env.TLS != "", env.User != "")...)
	b = append(b, " id "...)
	b = append(b, env.ID...)
	if env.TLS != "" {
		b = append(b, "\r\n\t(using "...)
		b = append(b, env.TLS...)
		if st, ok := ss.tlsState(); ok {
			b = append(b, " with cipher "...)
			b = append(b, tls.CipherSuiteName(st.CipherSuite)...)
		}
		b = append(b, ')')
	}
	if one := singleRecipient(tx); one != "" {
		b = append(b, "\r\n\tfor <"...)
		b = append(b, one...)
		b = append(b, '>')
	}
	b = append(b, ";\r\n\t"...)
	b = append(b, env.Received.Format(rfc5322Date)...)
	b = append(b, "\r\n"...)
	return b
}

// protocolName is the "with" keyword: ESMTP, ESMTPS, ESMTPA, ESMTPSA and
// their LMTP and UTF8 variants. go-smtp does not tell HELO from EHLO, so
// plain "SMTP" is never used.
func protocolName(lmtp, utf8, isTLS, authed bool) string {
	p := "ESMTP"
	switch {
	case lmtp && utf8:
		p = "UTF8LMTP"
	case lmtp:
		p = "LMTP"
	case utf8:
		p = "UTF8SMTP"
	}
	if isTLS {
		p += "S"
	}
	if authed {
		p += "A"
	}
	return p
}

func tlsVersion(v uint16) string {
	return strings.Replace(tls.VersionName(v), "TLS ", "TLSv", 1)
}

func singleRecipient(tx *transaction) string {
	if len(tx.rcpts) == 0 {
		return ""
	}
	one := tx.rcpts[0].addr
	for _, rc := range tx.rcpts[1:] {
		if rc.addr != one {
			return ""
		}
	}
	return one
}

// cleanHelo keeps a greeting to the characters of a domain or address
// literal, so that whatever a client said after its first EHLO cannot
// shape the header.
func cleanHelo(h string) string {
	if len(h) > 255 {
		h = h[:255]
	}
	var sb strings.Builder
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-_:[]", c) >= 0 {
			sb.WriteByte(c)
		} else {
			sb.WriteByte('_')
		}
	}
	if sb.Len() == 0 {
		return "unknown"
	}
	return sb.String()
}

// readHeader parses the message header once, with go-message, for the
// checks and additions that need it. A header it cannot parse is refused
// rather than guessed at: adding fields above a broken header would turn
// part of it into body, and a sender check could read it differently from
// the recipient's client.
func (ss *session) readHeader(sp *spool) (*textproto.Header, *gosmtp.SMTPError) {
	h, err := textproto.ReadHeader(bufio.NewReader(io.NewSectionReader(sp, 0, sp.Size())))
	if err != nil {
		ss.log.Info("malformed message header", "err", err)
		return nil, errBadHeader
	}
	return &h, nil
}

// submissionHeaders appends Date and Message-ID when the message has none
// (RFC 6409 8.2, 8.3).
func (ss *session) submissionHeaders(b []byte, h *textproto.Header) []byte {
	if !h.Has("Date") {
		b = append(b, "Date: "...)
		b = append(b, time.Now().Format(rfc5322Date)...)
		b = append(b, "\r\n"...)
	}
	if !h.Has("Message-Id") {
		var r [12]byte
		rand.Read(r[:])
		b = append(b, "Message-ID: <"...)
		b = append(b, hex.EncodeToString(r[:])...)
		b = append(b, '@')
		b = append(b, ss.srv.Hostname...)
		b = append(b, ">\r\n"...)
	}
	return b
}
