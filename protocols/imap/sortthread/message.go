package sortthread

import (
	"time"

	"github.com/emersion/go-message/textproto"
)

// Message is what SORT and THREAD need to know about one message. The
// header fields are raw values of the first field of each name (folding
// and encoded-words included): the package decodes them itself, exactly
// as the keys require. The caller, later the IMAP session with a cache in
// the store, fills these from the index or with SetHeader.
type Message struct {
	Seq, UID     uint32
	InternalDate time.Time
	Size         int64 // RFC822.SIZE, the size with CRLF line ends

	Date, Subject, From, To, Cc      string
	MessageID, References, InReplyTo string

	// HeaderDate is HeaderSentDate(Date) when DateParsed is set: a
	// caller that keeps messages' fields (a cache) parses each Date
	// once rather than at every SORT and THREAD.
	HeaderDate int64
	DateParsed bool
}

// SetHeader copies the fields SORT and THREAD use from a parsed header.
func (m *Message) SetHeader(h textproto.Header) {
	m.Date = h.Get("Date")
	m.Subject = h.Get("Subject")
	m.From = h.Get("From")
	m.To = h.Get("To")
	m.Cc = h.Get("Cc")
	m.MessageID = h.Get("Message-Id")
	m.References = h.Get("References")
	m.InReplyTo = h.Get("In-Reply-To")
}

// HeaderSentDate is the sent date a Date header value gives, in Unix
// seconds, or 0 when it gives none: RFC 5256 then takes the internal
// date. As in Dovecot, a Date of exactly the epoch counts as missing, and
// one before it wraps around to after 2106 (Dovecot keeps the date in 32
// unsigned bits).
func HeaderSentDate(date string) int64 {
	if t, ok := ParseDate(date); ok {
		return int64(uint32(t.Unix()))
	}
	return 0
}

// SentDate is the RFC 5256 sent date in Unix seconds: the one the Date
// header gives (HeaderSentDate), else the internal date.
func SentDate(header int64, internal time.Time) int64 {
	if header != 0 {
		return header
	}
	return internal.Unix()
}

func (m *Message) sentDate() int64 {
	d := m.HeaderDate
	if !m.DateParsed {
		d = HeaderSentDate(m.Date)
	}
	return SentDate(d, m.InternalDate)
}
