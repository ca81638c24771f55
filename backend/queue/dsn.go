package queue

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// maxReturnedHeaders bounds the original header block quoted in a bounce.
const maxReturnedHeaders = 64 << 10

// maxLine is the longest line RFC 5322 allows, CRLF excluded.
const maxLine = 998

const mailDate = "Mon, 02 Jan 2006 15:04:05 -0700"

// buildDSN writes an RFC 3464 delivery status notification for the failed
// recipients of an item, addressed to to: multipart/report with a human-readable part, the
// machine-readable message/delivery-status part and the original header
// (text/rfc822-headers, never the body: bounces should not carry the
// payload of a spam run back to a forged sender).
func (q *Queue) buildDSN(it *item, to string, failed []Recipient) ([]byte, error) {
	headers, err := q.originalHeaders(it)
	if err != nil {
		return nil, err
	}
	host := q.cfg.Hostname
	var rnd [12]byte
	rand.Read(rnd[:])
	boundary := "=_vmaild_" + hex.EncodeToString(rnd[:])
	now := time.Now()

	var b bytes.Buffer
	h := func(format string, args ...any) {
		fmt.Fprintf(&b, format, args...)
		b.WriteString("\r\n")
	}
	h("From: Mail Delivery System <MAILER-DAEMON@%s>", host)
	h("To: <%s>", to)
	h("Subject: Undelivered Mail Returned to Sender")
	h("Date: %s", now.Format(mailDate))
	h("Message-ID: <%s.dsn@%s>", hex.EncodeToString(rnd[:8]), host)
	h("Auto-Submitted: auto-replied") // RFC 3834: no auto-replies to this
	h("MIME-Version: 1.0")
	h("Content-Type: multipart/report; report-type=delivery-status;")
	h("\tboundary=\"%s\"", boundary)
	h("")
	h("This is a MIME-encapsulated message.")
	h("")

	h("--%s", boundary)
	h("Content-Type: text/plain; charset=utf-8")
	h("Content-Description: Notification")
	h("Content-Transfer-Encoding: 8bit")
	h("")
	h("This is the mail system at host %s.", host)
	h("")
	h("Your message could not be delivered to one or more recipients.")
	h("It is attached below the technical report.")
	h("")
	for _, r := range failed {
		// An address and a reply, each bounded, may together still
		// exceed a line.
		line := "<" + r.Addr + ">: " + r.LastReply
		if r.TLSPolicy != "" {
			line += " (TLS policy: " + r.TLSPolicy + ")"
		}
		b.Write(cutLine([]byte(line)))
		b.WriteString("\r\n")
	}
	h("")

	h("--%s", boundary)
	h("Content-Type: message/delivery-status")
	h("Content-Description: Delivery report")
	h("")
	h("Reporting-MTA: dns; %s", host)
	h("X-Vmaild-Queue-ID: %s", it.ID)
	h("Arrival-Date: %s", it.Created.Local().Format(mailDate))
	for _, r := range failed {
		h("")
		addrType := "rfc822"
		if !isASCII(r.Addr) {
			addrType = "utf-8" // RFC 6533
		}
		h("Final-Recipient: %s; %s", addrType, r.Addr)
		h("Action: failed")
		h("Status: %s", dsnStatus(r))
		if r.RemoteMTA != "" && r.RemoteMTA != "local" {
			h("Remote-MTA: dns; %s", r.RemoteMTA)
		}
		if r.ReplyCode != 0 {
			h("Diagnostic-Code: smtp; %s", oneLine(stripPrefix(r.LastReply)))
		} else if r.LastReply != "" {
			h("Diagnostic-Code: X-Vmaild; %s", oneLine(r.LastReply))
		}
		if !r.LastAttempt.IsZero() {
			h("Last-Attempt-Date: %s", r.LastAttempt.Local().Format(mailDate))
		}
		if r.TLSPolicy != "" {
			// An extension field (RFC 3464 section 7): which outbound
			// TLS policy the last attempt ran under.
			h("X-Vmaild-TLS-Policy: %s", oneLine(r.TLSPolicy))
		}
	}
	h("")

	h("--%s", boundary)
	h("Content-Type: text/rfc822-headers")
	h("Content-Description: Undelivered Message Headers")
	if !isASCII(string(headers)) {
		h("Content-Transfer-Encoding: 8bit")
	}
	h("")
	b.Write(headers)
	h("")
	h("--%s--", boundary)
	return q.signDSN(it, b.Bytes()), nil
}

// signDSN puts Config.SignDSN's fields on top of a bounce.
func (q *Queue) signDSN(it *item, dsn []byte) []byte {
	if q.cfg.SignDSN == nil {
		return dsn
	}
	sig, err := q.cfg.SignDSN(dsn)
	if err != nil {
		q.log.Error("queue: bounce not signed", "queue_id", it.ID, "err", err)
		return dsn
	}
	return append(sig, dsn...)
}

// dsnStatus is the RFC 3463 code for the Status field, which must be a
// plain class.subject.detail.
func dsnStatus(r Recipient) string {
	s := r.Status
	var a, b, c int
	if n, _ := fmt.Sscanf(s, "%d.%d.%d", &a, &b, &c); n == 3 && (a == 4 || a == 5) && fmt.Sprintf("%d.%d.%d", a, b, c) == s {
		return s
	}
	return "5.0.0"
}

// stripPrefix drops the "gave up after" note from an expiry reply so the
// SMTP diagnostic starts with the code.
func stripPrefix(s string) string {
	if strings.HasPrefix(s, "gave up after ") {
		if i := strings.Index(s, ": "); i >= 0 {
			return s[i+2:]
		}
	}
	return s
}

// originalHeaders returns the header block of a queued message, with CRLF
// line ends, cut at maxReturnedHeaders on a line boundary. So that the
// bounce itself is a valid message, a line longer than RFC 5322 allows
// (SMTP takes longer ones) is cut, and control characters other than tab
// (a stray CR, which some MTAs take for a line end, or a NUL, which an
// 8bit part may not hold) become spaces.
func (q *Queue) originalHeaders(it *item) ([]byte, error) {
	f, sr, err := q.spool.open(it.ID, it.Size)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The buffer holds the whole limit, so ReadSlice never splits a line.
	br := bufio.NewReaderSize(io.LimitReader(sr, maxReturnedHeaders), maxReturnedHeaders+16)
	var out bytes.Buffer
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			break // EOF or the limit: a partial line is dropped, not quoted cut
		}
		l := bytes.TrimRight(line, "\r\n")
		if len(l) == 0 {
			break // end of the header block
		}
		out.Write(cutLine(bytes.Map(controlToSpace, l)))
		out.WriteString("\r\n")
	}
	return out.Bytes(), nil
}

// cutLine shortens a line (without its CRLF) to the 998 octets RFC 5322
// allows, on a UTF-8 boundary.
func cutLine(l []byte) []byte {
	if len(l) <= maxLine {
		return l
	}
	n := maxLine
	for n > 0 && !utf8.RuneStart(l[n]) {
		n--
	}
	return l[:n]
}

func controlToSpace(r rune) rune {
	if r < 0x20 && r != '\t' || r == 0x7f {
		return ' '
	}
	return r
}
