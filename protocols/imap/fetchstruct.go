package imap

import (
	"sort"
	"strconv"
	"strings"

	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// BODYSTRUCTURE and ENVELOPE from a parsed MIME tree, as Dovecot 2.3
// answers them (the private Dovecot of TestFetchDovecotOracle is the
// reference): names and values as the header writes them, parameters in
// header order with RFC 2231 continuations joined after the plain ones,
// text parts without a charset get charset us-ascii, envelope strings
// are the raw field values with line breaks folded to one space and
// encoded-words left encoded.

// skipCFWS skips white space and (nested) comments from s[i:].
func skipCFWS(s string, i int) int {
	i, _, _ = skipCFWSComment(s, i)
	return i
}

// skipCFWSComment skips white space and (nested) comments from s[i:],
// and returns the text of the last comment skipped.
func skipCFWSComment(s string, i int) (next int, comment string, had bool) {
	for i < len(s) {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '(':
			start, depth := i+1, 0
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					i += 2
					continue
				}
				i++
				if c == '(' {
					depth++
				} else if c == ')' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			end := i - 1
			if depth != 0 {
				end = i // unterminated: the rest
			}
			if end >= start {
				comment, had = s[start:end], true
			}
		default:
			return i, comment, had
		}
	}
	return i, comment, had
}

func isTokenChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>@,;:\"/[]?=`, rune(c))
}

func token(s string, i int) (string, int) {
	j := i
	for j < len(s) && isTokenChar(s[j]) {
		j++
	}
	return s[i:j], j
}

// quotedString reads a quoted string at s[i] == '"'; ok is false when it
// is not terminated.
func quotedString(s string, i int) (string, int, bool) {
	var b strings.Builder
	i++
	for i < len(s) {
		c := s[i]
		switch c {
		case '"':
			return b.String(), i + 1, true
		case '\\':
			if i+1 < len(s) {
				i++
				c = s[i]
			}
		case '\r', '\n':
			i++
			continue
		}
		b.WriteByte(c)
		i++
	}
	return b.String(), i, false
}

// contentType parses the first Content-Type: type and subtype as
// written. present is false without the field (the part is then
// text/plain, or message/rfc822 in a digest); a value that does not
// parse (no type, "type/" or junk after the subtype) gives an empty type
// and subtype, which Dovecot sends as "" "". A type without a subtype
// keeps the type.
func contentType(h *partHeader) (typ, sub string, params []wire.Param, present bool) {
	v, ok := h.first("content-type")
	if !ok {
		return "", "", nil, false
	}
	i := skipCFWS(v, 0)
	typ, i = token(v, i)
	i = skipCFWS(v, i)
	if typ == "" {
		return "", "", nil, true
	}
	if i >= len(v) || v[i] != '/' {
		if i < len(v) && v[i] != ';' {
			return "", "", nil, true
		}
		return typ, "", parseParams(v, i), true
	}
	i = skipCFWS(v, i+1)
	sub, i = token(v, i)
	if i = skipCFWS(v, i); sub == "" || (i < len(v) && v[i] != ';') {
		return "", "", nil, true
	}
	return typ, sub, parseParams(v, i), true
}

// parseParams reads "; name=value" pairs from v[i:], stopping at the
// first malformed one, then joins RFC 2231 continuations.
func parseParams(v string, i int) []wire.Param {
	var plain, ext []wire.Param
	for {
		i = skipCFWS(v, i)
		if i >= len(v) || v[i] != ';' {
			break
		}
		i = skipCFWS(v, i+1)
		name, j := token(v, i)
		if name == "" {
			break
		}
		j = skipCFWS(v, j)
		if j >= len(v) || v[j] != '=' {
			break
		}
		j = skipCFWS(v, j+1)
		var value string
		if j < len(v) && v[j] == '"' {
			var ok bool
			value, j, ok = quotedString(v, j)
			if !ok {
				break
			}
		} else {
			value, j = token(v, j) // may be empty, as Dovecot takes it
		}
		i = j
		if strings.IndexByte(name, '*') >= 0 {
			ext = append(ext, wire.Param{Name: name, Value: value})
		} else {
			plain = append(plain, wire.Param{Name: name, Value: value})
		}
	}
	return append(plain, joinRFC2231(ext)...)
}

// joinRFC2231 joins name*0, name*1... (and name*0*, name*1*...) into
// name (or name* when the first piece is encoded), in name order; a lone
// name* stays as it is.
func joinRFC2231(ext []wire.Param) []wire.Param {
	if len(ext) == 0 {
		return nil
	}
	type piece struct {
		base    string
		idx     int
		encoded bool
		value   string
		raw     string // the name as written
	}
	var pieces []piece
	var out []wire.Param
	for _, p := range ext {
		star := strings.IndexByte(p.Name, '*')
		base, rest := p.Name[:star], p.Name[star+1:]
		encoded := strings.HasSuffix(rest, "*")
		rest = strings.TrimSuffix(rest, "*")
		if rest == "" {
			pieces = append(pieces, piece{base, -1, true, p.Value, p.Name})
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			continue
		}
		pieces = append(pieces, piece{base, n, encoded, p.Value, p.Name})
	}
	sort.SliceStable(pieces, func(a, b int) bool {
		if !strings.EqualFold(pieces[a].base, pieces[b].base) {
			return strings.ToLower(pieces[a].base) < strings.ToLower(pieces[b].base)
		}
		return pieces[a].idx < pieces[b].idx
	})
	for i := 0; i < len(pieces); {
		p := pieces[i]
		if p.idx < 0 {
			out = append(out, wire.Param{Name: p.base + "*", Value: p.value})
			i++
			continue
		}
		j := i
		var b strings.Builder
		whole := true
		for j < len(pieces) && strings.EqualFold(pieces[j].base, p.base) && pieces[j].idx >= 0 {
			whole = whole && pieces[j].idx == j-i
			b.WriteString(pieces[j].value)
			j++
		}
		if !whole {
			// Missing or repeated pieces: Dovecot sends them as they
			// are.
			for _, q := range pieces[i:j] {
				out = append(out, wire.Param{Name: q.raw, Value: q.value})
			}
			i = j
			continue
		}
		name, value := p.base, b.String()
		anyEncoded := false
		for _, q := range pieces[i:j] {
			anyEncoded = anyEncoded || q.encoded
		}
		if anyEncoded {
			// Encoded from the first piece on, or only later: then
			// with an empty charset and language before.
			name += "*"
			if !p.encoded {
				value = "''" + value
			}
		}
		out = append(out, wire.Param{Name: name, Value: value})
		i = j
	}
	return out
}

func paramValue(params []wire.Param, name string) (string, bool) {
	for _, p := range params {
		if strings.EqualFold(p.Name, name) {
			return p.Value, true
		}
	}
	return "", false
}

// transferEncoding is a part's Content-Transfer-Encoding as written, ""
// when absent.
func transferEncoding(h *partHeader) string {
	v, ok := h.first("content-transfer-encoding")
	if !ok {
		return ""
	}
	t, _ := token(v, skipCFWS(v, 0))
	return t
}

func optString(h *partHeader, name string) *string {
	v, ok := h.first(name)
	if !ok {
		return nil
	}
	v = dropLineBreaks(v)
	return &v
}

// dropLineBreaks removes the line breaks of a folded value and replaces
// NULs, as Dovecot's header parser unfolds.
func dropLineBreaks(v string) string {
	if !strings.ContainsAny(v, "\r\n\x00") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\r', '\n':
		case 0:
			b.WriteString("\uFFFD")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// bodyPart builds the BODYSTRUCTURE of p.
func bodyPart(p *mimePart, digestChild bool) *wire.BodyPart {
	bp := &wire.BodyPart{Size: p.bodySize}
	typ, sub, params, present := contentType(&p.h)
	if !present {
		typ, sub = "text", "plain"
		if digestChild {
			typ, sub = "message", "rfc822"
		}
	}
	if p.truncated {
		typ, sub = "application", "octet-stream"
	}
	bp.Type, bp.Subtype, bp.Params = typ, sub, params
	if p.message {
		// Dovecot writes these two in lower case, whatever the header.
		bp.Type, bp.Subtype = "message", "rfc822"
	}
	if p.multipart {
		bp.Multipart = true
		digest := eqFold(sub, "digest")
		for _, c := range p.children {
			bp.Children = append(bp.Children, bodyPart(c, digest))
		}
	} else {
		if eqFold(typ, "text") {
			if _, ok := paramValue(params, "charset"); !ok {
				bp.Params = append(bp.Params, wire.Param{Name: "charset", Value: "us-ascii"})
			}
			bp.Lines, bp.HasLines = p.lines, true
		}
		bp.ID = optString(&p.h, "content-id")
		bp.Description = optString(&p.h, "content-description")
		bp.Encoding = transferEncoding(&p.h)
		if bp.Encoding == "" {
			bp.Encoding = "7bit"
		}
		if p.message && len(p.children) == 1 {
			m := p.children[0]
			bp.Envelope = envelope(&m.h)
			bp.Message = bodyPart(m, false)
			bp.Lines, bp.HasLines = p.lines, true
		}
		bp.MD5 = optString(&p.h, "content-md5")
	}
	if v, ok := p.h.first("content-disposition"); ok {
		i := skipCFWS(v, 0)
		d, j := token(v, i)
		if d != "" {
			bp.Disposition = &d
			bp.DispositionParams = parseParams(v, j)
		}
	}
	if v, ok := p.h.first("content-language"); ok {
		for i := skipCFWS(v, 0); i < len(v); i = skipCFWS(v, i) {
			if v[i] == ',' {
				i++
				continue
			}
			l, j := token(v, i)
			if l == "" {
				break
			}
			bp.Language = append(bp.Language, l)
			i = j
		}
	}
	bp.Location = optString(&p.h, "content-location")
	return bp
}

// unfold folds each line break and the white space after it into one
// space and replaces NULs, as Dovecot writes header values.
func unfold(v string) string {
	if !strings.ContainsAny(v, "\r\n\x00") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\r':
		case '\n':
			for i+1 < len(v) && (v[i+1] == ' ' || v[i+1] == '\t') {
				i++
			}
			b.WriteByte(' ')
		case 0:
			b.WriteString("\uFFFD")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// envelope builds the ENVELOPE of a message's header.
func envelope(h *partHeader) *wire.Envelope {
	env := &wire.Envelope{}
	// Subject and Date fold each line break and the white space after
	// it into a space; In-Reply-To and Message-ID only lose the line
	// breaks (Dovecot's two ways of writing them).
	str := func(name string, fold func(string) string) *string {
		v, ok := h.last(name)
		if !ok {
			return nil
		}
		v = fold(v)
		return &v
	}
	addrs := func(name string) []wire.Address {
		// Every occurrence adds to the list, as Dovecot reads them.
		var out []wire.Address
		for _, f := range h.fields {
			if f.name == name {
				out = append(out, parseAddressList(f.value)...)
			}
		}
		return out
	}
	env.Date = str("date", unfold)
	env.Subject = str("subject", unfold)
	env.From = addrs("from")
	env.Sender = addrs("sender")
	env.ReplyTo = addrs("reply-to")
	env.To = addrs("to")
	env.Cc = addrs("cc")
	env.Bcc = addrs("bcc")
	env.InReplyTo = str("in-reply-to", dropLineBreaks)
	env.MessageID = str("message-id", dropLineBreaks)
	if len(env.Sender) == 0 {
		env.Sender = env.From
	}
	if len(env.ReplyTo) == 0 {
		env.ReplyTo = env.From
	}
	return env
}
