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

// sentDate is the RFC 5256 sent date in Unix seconds: the Date header,
// else the internal date. As in Dovecot, a Date of exactly the epoch
// counts as missing, and one before it wraps around to after 2106.
func (m *Message) sentDate() int64 {
	if t, ok := ParseDate(m.Date); ok {
		// Dovecot keeps the date in 32 unsigned bits: 1969 is 2106.
		if u := int64(uint32(t.Unix())); u != 0 {
			return u
		}
	}
	return m.InternalDate.Unix()
}
