package wire

import (
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// Envelope is an ENVELOPE as the message's header has it: the Date,
// Subject, In-Reply-To and Message-ID fields raw (RFC 2047 words not
// decoded, the date as written), nil when the field is absent. Address
// names are raw too. The server fills Sender and ReplyTo from From when
// the message lacks them (RFC 9051 section 7.5.2); the encoder writes
// what it is given.
type Envelope struct {
	Date, Subject                      *string
	From, Sender, ReplyTo, To, Cc, Bcc []Address
	InReplyTo, MessageID               *string
}

// Address is an ENVELOPE address: imap.Address with the source route
// (at-domain-list) that Dovecot answers and go-imap drops. A group
// starts with an Address with a Mailbox (the group's name) and no Host,
// and ends with one with neither.
type Address struct {
	Name, Adl, Mailbox, Host string
}

func addressesFromIMAP(l []imap.Address) []Address {
	if l == nil {
		return nil
	}
	out := make([]Address, len(l))
	for i, a := range l {
		out[i] = Address{Name: a.Name, Mailbox: a.Mailbox, Host: a.Host}
	}
	return out
}

// envelopeDateLayout formats an imap.Envelope's parsed date back.
const envelopeDateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// EnvelopeFromIMAP converts go-imap's envelope, whose fields are already
// decoded, for a message/rfc822 part of a BODYSTRUCTURE.
func EnvelopeFromIMAP(env *imap.Envelope) *Envelope {
	if env == nil {
		return &Envelope{}
	}
	ptr := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	out := &Envelope{Subject: ptr(env.Subject), From: addressesFromIMAP(env.From), Sender: addressesFromIMAP(env.Sender),
		ReplyTo: addressesFromIMAP(env.ReplyTo), To: addressesFromIMAP(env.To), Cc: addressesFromIMAP(env.Cc), Bcc: addressesFromIMAP(env.Bcc)}
	if !env.Date.IsZero() {
		out.Date = ptr(env.Date.Format(envelopeDateLayout))
	}
	if len(env.InReplyTo) > 0 {
		out.InReplyTo = ptr("<" + strings.Join(env.InReplyTo, "> <") + ">")
	}
	if env.MessageID != "" {
		out.MessageID = ptr("<" + env.MessageID + ">")
	}
	return out
}

// Envelope writes ENVELOPE (...).
func (w *FetchWriter) Envelope(env *Envelope) {
	w.item("ENVELOPE ")
	w.e.envelope(env)
}

func (e *Encoder) envelope(env *Envelope) {
	e.byte1('(')
	e.nstrPtr(env.Date)
	e.sp()
	e.nstrPtr(env.Subject)
	for _, l := range [][]Address{env.From, env.Sender, env.ReplyTo, env.To, env.Cc, env.Bcc} {
		e.sp()
		e.addressList(l)
	}
	e.sp()
	e.nstrPtr(env.InReplyTo)
	e.sp()
	e.nstrPtr(env.MessageID)
	e.byte1(')')
}

// addressList writes an address list, NIL when empty.
func (e *Encoder) addressList(l []Address) {
	if len(l) == 0 {
		e.nil_()
		return
	}
	e.byte1('(')
	for _, a := range l {
		e.byte1('(')
		e.nstr(a.Name)
		e.sp()
		e.nstr(a.Adl)
		e.sp()
		e.nstr(a.Mailbox)
		e.sp()
		e.nstr(a.Host)
		e.byte1(')')
	}
	e.byte1(')')
}

// BodyStructure writes BODYSTRUCTURE (extended) or BODY (not).
func (w *FetchWriter) BodyStructure(bs imap.BodyStructure, extended bool) {
	if extended {
		w.item("BODYSTRUCTURE ")
	} else {
		w.item("BODY ")
	}
	w.e.bodyStructure(bs, extended)
}

func (e *Encoder) bodyStructure(bs imap.BodyStructure, extended bool) {
	e.byte1('(')
	switch bs := bs.(type) {
	case *imap.BodyStructureSinglePart:
		e.singlePart(bs, extended)
	case *imap.BodyStructureMultiPart:
		for _, c := range bs.Children {
			e.bodyStructure(c, extended)
		}
		if len(bs.Children) == 0 {
			// RFC 9051 needs at least one part; an empty multipart is
			// answered as an empty text part inside it.
			e.raw(`("text" "plain" NIL NIL NIL "7bit" 0 0)`)
		}
		e.sp()
		e.str(bs.Subtype)
		if extended {
			var ext imap.BodyStructureMultiPartExt
			if bs.Extended != nil {
				ext = *bs.Extended
			}
			e.sp()
			e.params(ext.Params)
			e.extTail(ext.Disposition, ext.Language, ext.Location)
		}
	default:
		e.raw(`"text" "plain" NIL NIL NIL "7bit" 0 0`)
	}
	e.byte1(')')
}

func (e *Encoder) singlePart(bs *imap.BodyStructureSinglePart, extended bool) {
	e.str(bs.Type)
	e.sp()
	e.str(bs.Subtype)
	e.sp()
	e.params(bs.Params)
	e.sp()
	e.nstr(bs.ID)
	e.sp()
	e.nstr(bs.Description)
	e.sp()
	enc := bs.Encoding
	if enc == "" {
		enc = "7bit"
	}
	e.str(strings.ToLower(enc))
	e.sp()
	e.num(uint64(bs.Size))
	if m := bs.MessageRFC822; m != nil {
		e.sp()
		e.envelope(EnvelopeFromIMAP(m.Envelope))
		e.sp()
		if m.BodyStructure != nil {
			e.bodyStructure(m.BodyStructure, extended)
		} else {
			e.raw(`("text" "plain" NIL NIL NIL "7bit" 0 0)`)
		}
		e.sp()
		e.num(uint64(m.NumLines))
	} else if bs.Text != nil {
		e.sp()
		e.num(uint64(bs.Text.NumLines))
	}
	if !extended {
		return
	}
	var ext imap.BodyStructureSinglePartExt
	if bs.Extended != nil {
		ext = *bs.Extended
	}
	e.raw(" NIL") // body-fld-md5
	e.extTail(ext.Disposition, ext.Language, ext.Location)
}

// extTail writes SP disposition SP language SP location.
func (e *Encoder) extTail(d *imap.BodyStructureDisposition, lang []string, loc string) {
	e.sp()
	if d == nil {
		e.nil_()
	} else {
		e.byte1('(')
		e.str(d.Value)
		e.sp()
		e.params(d.Params)
		e.byte1(')')
	}
	e.sp()
	switch len(lang) {
	case 0:
		e.nil_()
	case 1:
		e.str(lang[0])
	default:
		e.byte1('(')
		for i, l := range lang {
			if i > 0 {
				e.sp()
			}
			e.str(l)
		}
		e.byte1(')')
	}
	e.sp()
	e.nstr(loc)
}

// params writes a body-fld-param, keys sorted so the answer is stable.
func (e *Encoder) params(p map[string]string) {
	if len(p) == 0 {
		e.nil_()
		return
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.byte1('(')
	for i, k := range keys {
		if i > 0 {
			e.sp()
		}
		e.str(k)
		e.sp()
		e.str(p[k])
	}
	e.byte1(')')
}
