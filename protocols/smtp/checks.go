package smtp

import (
	"bytes"
	"strings"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/inbound"
)

// maxHeaderRewrite bounds the header this package rewrites to remove
// fields a check named; a longer header keeps them (the check is logged).
const maxHeaderRewrite = 1 << 20

// runChecks runs Server.Checks on a spooled message, before the reply. It
// returns the verdict (nil when no check runs for this listener) and the
// message as it is to be delivered (with the fields the checks add on top
// and without those they remove), or the reply refusing it.
func (ss *session) runChecks(tx *transaction, msg *message) (*inbound.Verdict, *message, *gosmtp.SMTPError) {
	p := ss.srv.Checks
	role := ss.srv.Role.String()
	if !p.Runs(role) {
		return nil, msg, nil
	}
	// The checks judge the header: one that does not parse would hide
	// fields from them that a lenient reader (a mail client) still sees,
	// a From for DMARC or a forged Authentication-Results. Such a message
	// is refused, as submission refuses it.
	if _, e := ss.readHeader(msg.body); e != nil {
		return nil, nil, e
	}
	env := ss.envelope(tx)
	m := &inbound.Message{
		ID: tx.id, ClientIP: env.ClientIP, Helo: env.Helo, From: tx.from,
		User: env.User, Trusted: ss.srv.trusted(env.ClientIP), TLS: env.TLS, Role: role, Hostname: ss.srv.Hostname,
		Received: tx.start, Data: msg,
	}
	for _, rc := range tx.rcpts {
		m.Recipients = append(m.Recipients, rc.addr)
	}
	v := p.Run(ss.ctx(), m)
	if code, enh, text, ok := v.Reply(); ok {
		return v, nil, smtpErr(code, enh, text)
	}
	return v, ss.rewrite(msg, v), nil
}

// rewrite applies the verdict's header changes: added fields go on top
// (above our Received field, as a later hop's would), removed ones are
// cut out of the header as received.
func (ss *session) rewrite(msg *message, v *inbound.Verdict) *message {
	if len(v.AddHeader) == 0 && len(v.RemoveHeader) == 0 {
		return msg
	}
	var head []byte
	for _, f := range v.AddHeader {
		head = appendField(head, f)
	}
	out := &message{body: msg.body, off: msg.off}
	if len(v.RemoveHeader) > 0 {
		kept, end, ok := removeFields(msg.body, v.RemoveHeader)
		if ok {
			out.head = append(append(head, msg.head...), kept...)
			out.off = end
			return out
		}
		ss.log.Warn("header too long to remove fields from", "fields", len(v.RemoveHeader))
	}
	out.head = append(head, msg.head...)
	return out
}

// appendField writes one field with CRLF line ends, every continuation
// line folded with a tab when it is not already, so that a value can
// neither end the header nor start a field of its own.
func appendField(b []byte, f delivery.HeaderField) []byte {
	b = append(b, f.Name...)
	b = append(b, ": "...)
	value := strings.ReplaceAll(f.Value, "\r\n", "\n")
	value = strings.ReplaceAll(value, "\r", "")
	for i, line := range strings.Split(value, "\n") {
		if i > 0 {
			b = append(b, "\r\n"...)
			if line == "" || (line[0] != ' ' && line[0] != '\t') {
				b = append(b, '\t')
			}
		}
		b = append(b, line...)
	}
	return append(b, "\r\n"...)
}

// removeFields reads the header of sp (its fields up to the empty line)
// and returns it without the fields refs name, and the offset of the
// empty line that ends it. ok is false when the header is longer than
// maxHeaderRewrite.
func removeFields(sp *spool, refs []inbound.HeaderRef) (kept []byte, end int64, ok bool) {
	buf := make([]byte, min(sp.Size(), maxHeaderRewrite))
	n, _ := sp.ReadAt(buf, 0)
	buf = buf[:n]
	seen := map[string]int{}
	pos := 0
	for pos < len(buf) {
		if bytes.HasPrefix(buf[pos:], []byte("\r\n")) {
			return kept, int64(pos), true
		}
		// One field: its first line and every continuation line.
		fieldEnd := pos
		for {
			i := bytes.Index(buf[fieldEnd:], []byte("\r\n"))
			if i < 0 {
				if int64(len(buf)) == sp.Size() {
					// A header without a body: the field ends the message.
					fieldEnd = len(buf)
					break
				}
				return nil, 0, false
			}
			fieldEnd += i + 2
			if fieldEnd >= len(buf) || (buf[fieldEnd] != ' ' && buf[fieldEnd] != '\t') {
				break
			}
		}
		field := buf[pos:fieldEnd]
		name, _, _ := bytes.Cut(field, []byte(":"))
		key := strings.ToLower(strings.TrimSpace(string(name)))
		seen[key]++
		drop := false
		for _, r := range refs {
			if strings.ToLower(r.Name) == key && r.Index == seen[key] {
				drop = true
			}
		}
		if !drop {
			kept = append(kept, field...)
		}
		pos = fieldEnd
	}
	if int64(len(buf)) < sp.Size() {
		return nil, 0, false
	}
	return kept, int64(pos), true
}
