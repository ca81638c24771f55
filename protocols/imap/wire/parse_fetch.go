package wire

import (
	"strings"

	"github.com/emersion/go-imap/v2"
)

// Legacy fetch items of RFC 3501 that RFC 9051 dropped; their answers
// carry their own names, so they are not folded into BodySection.
type RFC822Items struct {
	Whole  bool // RFC822: BODY[], sets \Seen
	Header bool // RFC822.HEADER: BODY.PEEK[HEADER]
	Text   bool // RFC822.TEXT: BODY[TEXT], sets \Seen
}

func parseFetch(r *Reader, uid bool) (any, error) {
	a := Fetch{UID: uid}
	var err error
	if err = r.sp(); err != nil {
		return nil, err
	}
	if a.NumSet, err = r.numSet(uid); err != nil {
		return nil, err
	}
	if err = r.sp(); err != nil {
		return nil, err
	}
	if r.peek() == '(' {
		err = r.list(func() error { return r.fetchAtt(&a) })
	} else {
		err = r.fetchAtt(&a)
	}
	if err != nil {
		return nil, err
	}
	a.Options.UID = a.Options.UID || uid
	if !r.maybeSP() {
		return &a, nil
	}
	err = r.list(func() error {
		k, err := r.keyword()
		if err != nil {
			return err
		}
		switch k {
		case "CHANGEDSINCE":
			if err := r.sp(); err != nil {
				return err
			}
			a.Options.ChangedSince, err = r.modSeq()
			return err
		case "VANISHED":
			a.Vanished = true
			return nil
		}
		return r.bad("Unknown FETCH modifier %s", k)
	})
	if err == nil && a.Vanished && (!uid || a.Options.ChangedSince == 0) {
		err = r.bad("VANISHED needs UID FETCH and CHANGEDSINCE")
	}
	return &a, err
}

func isFetchNameChar(c byte) bool {
	return c == '.' || c == '-' || ('0' <= c && c <= '9') || ('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z')
}

// fetchAtt reads one fetch-att or macro into a.
func (r *Reader) fetchAtt(a *Fetch) error {
	if err := r.token(); err != nil {
		return err
	}
	name := r.word(isFetchNameChar)
	if len(name) == 0 {
		return r.bad("Expected a fetch item at %q", r.near())
	}
	k := upper(name)
	o := &a.Options
	switch k {
	case "ALL", "FAST", "FULL":
		o.Flags, o.InternalDate, o.RFC822Size = true, true, true
		if k != "FAST" {
			o.Envelope = true
		}
		if k == "FULL" {
			o.BodyStructure = &imap.FetchItemBodyStructure{}
		}
	case "ENVELOPE":
		o.Envelope = true
	case "FLAGS":
		o.Flags = true
	case "INTERNALDATE":
		o.InternalDate = true
	case "RFC822.SIZE":
		o.RFC822Size = true
	case "UID":
		o.UID = true
	case "MODSEQ":
		o.ModSeq = true
	case "BODYSTRUCTURE":
		o.BodyStructure = &imap.FetchItemBodyStructure{Extended: true}
	case "RFC822":
		a.RFC822.Whole = true
	case "RFC822.HEADER":
		a.RFC822.Header = true
	case "RFC822.TEXT":
		a.RFC822.Text = true
	case "BODY", "BODY.PEEK":
		if r.peek() != '[' {
			if k == "BODY.PEEK" {
				return r.bad("BODY.PEEK needs a section")
			}
			if o.BodyStructure == nil {
				o.BodyStructure = &imap.FetchItemBodyStructure{}
			}
			return nil
		}
		s, err := r.bodySection()
		if err != nil {
			return err
		}
		s.Peek = k == "BODY.PEEK"
		if s.Partial, err = r.partial(); err != nil {
			return err
		}
		o.BodySection = append(o.BodySection, s)
	case "BINARY", "BINARY.PEEK", "BINARY.SIZE":
		part, err := r.binarySection()
		if err != nil {
			return err
		}
		if k == "BINARY.SIZE" {
			o.BinarySectionSize = append(o.BinarySectionSize, &imap.FetchItemBinarySectionSize{Part: part})
			return nil
		}
		s := &imap.FetchItemBinarySection{Part: part, Peek: k == "BINARY.PEEK"}
		if s.Partial, err = r.partial(); err != nil {
			return err
		}
		o.BinarySection = append(o.BinarySection, s)
	default:
		return r.bad("Unknown fetch item %s", k)
	}
	return nil
}

// sectionPart reads section-part: nz-number *("." nz-number), leaving a
// following ".TEXT"-like suffix unread.
func (r *Reader) sectionPart() ([]int, error) {
	var part []int
	for {
		c := r.peek()
		if c < '0' || c > '9' {
			return part, nil
		}
		n, err := r.nzNumber()
		if err != nil {
			return nil, err
		}
		part = append(part, int(n))
		if r.peek() != '.' {
			return part, nil
		}
		if r.pos+1 < len(r.buf) && (r.buf[r.pos+1] < '0' || r.buf[r.pos+1] > '9') {
			return part, nil // the "." before a section-text
		}
		r.pos++
	}
}

// bodySection reads "[" [section-spec] "]".
func (r *Reader) bodySection() (*imap.FetchItemBodySection, error) {
	s := &imap.FetchItemBodySection{}
	if err := r.expect('['); err != nil {
		return nil, err
	}
	var err error
	if s.Part, err = r.sectionPart(); err != nil {
		return nil, err
	}
	if len(s.Part) > 0 {
		if r.peek() == ']' {
			r.pos++
			return s, nil
		}
		if err := r.expect('.'); err != nil {
			return nil, err
		}
	}
	if r.peek() == ']' && len(s.Part) == 0 {
		r.pos++
		return s, nil
	}
	text := upper(r.word(isFetchNameChar))
	switch text {
	case "HEADER":
		s.Specifier = imap.PartSpecifierHeader
	case "TEXT":
		s.Specifier = imap.PartSpecifierText
	case "MIME":
		if len(s.Part) == 0 {
			return nil, r.bad("MIME needs a section part")
		}
		s.Specifier = imap.PartSpecifierMIME
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		s.Specifier = imap.PartSpecifierHeader
		if err := r.sp(); err != nil {
			return nil, err
		}
		var names []string
		err := r.list(func() error {
			n, err := r.astring()
			names = append(names, n)
			return err
		})
		if err != nil {
			return nil, err
		}
		if len(names) == 0 {
			return nil, r.bad("Empty header field list")
		}
		if strings.HasSuffix(text, ".NOT") {
			s.HeaderFieldsNot = names
		} else {
			s.HeaderFields = names
		}
	default:
		return nil, r.bad("Invalid section %q", text)
	}
	return s, r.expect(']')
}

// binarySection reads "[" [section-part] "]".
func (r *Reader) binarySection() ([]int, error) {
	if err := r.expect('['); err != nil {
		return nil, err
	}
	part, err := r.sectionPart()
	if err != nil {
		return nil, err
	}
	return part, r.expect(']')
}

// partial reads an optional "<" number "." nz-number ">".
func (r *Reader) partial() (*imap.SectionPartial, error) {
	if r.peek() != '<' {
		return nil, nil
	}
	r.pos++
	off, err := r.number()
	if err != nil {
		return nil, err
	}
	if err := r.expect('.'); err != nil {
		return nil, err
	}
	size, err := r.nzNumber()
	if err != nil {
		return nil, err
	}
	return &imap.SectionPartial{Offset: int64(off), Size: int64(size)}, r.expect('>')
}
