package wire

// Param is one MIME parameter, in the order the header has it.
type Param struct{ Name, Value string }

// BodyPart is one node of a BODY or BODYSTRUCTURE answer as the
// message's header fields have it: type, subtype, parameter names and
// the transfer encoding as written (Dovecot sends them unchanged; go-imap's
// BodyStructure sorts parameters and lower-cases the encoding). The server
// fills the defaults (text/plain, charset us-ascii, 7bit); the encoder
// writes what it is given.
type BodyPart struct {
	Type, Subtype string
	Params        []Param
	ID            *string
	Description   *string
	Encoding      string
	Size          int64
	// Lines is sent for text/* and message/rfc822 parts (HasLines).
	Lines    int64
	HasLines bool
	// Envelope and Message are a message/rfc822 part's encapsulated
	// message (Message non-nil marks one).
	Envelope *Envelope
	Message  *BodyPart
	// Children are a multipart's parts (Multipart set). None is answered
	// as one empty text part, RFC 9051 needing at least one.
	Multipart bool
	Children  []*BodyPart
	// Extension data (BODYSTRUCTURE only).
	MD5               *string
	Disposition       *string
	DispositionParams []Param
	Language          []string
	Location          *string
}

// BodyPart writes BODYSTRUCTURE (extended) or BODY (not) from p.
func (w *FetchWriter) BodyPart(p *BodyPart, extended bool) {
	if extended {
		w.item("BODYSTRUCTURE ")
	} else {
		w.item("BODY ")
	}
	w.e.bodyPart(p, extended)
}

// emptyPart stands for a multipart without parts, as Dovecot answers it.
var emptyPart = BodyPart{Type: "text", Subtype: "plain", Params: []Param{{"charset", "us-ascii"}}, Encoding: "7bit", HasLines: true}

func (e *Encoder) bodyPart(p *BodyPart, extended bool) {
	e.byte1('(')
	if p.Multipart {
		for _, c := range p.Children {
			e.bodyPart(c, extended)
		}
		if len(p.Children) == 0 {
			e.bodyPart(&emptyPart, extended)
		}
		e.sp()
		e.str(p.Subtype)
		if extended {
			e.sp()
			e.paramList(p.Params)
			e.partExtTail(p)
		}
		e.byte1(')')
		return
	}
	e.str(p.Type)
	e.sp()
	e.str(p.Subtype)
	e.sp()
	e.paramList(p.Params)
	e.sp()
	e.nstrPtr(p.ID)
	e.sp()
	e.nstrPtr(p.Description)
	e.sp()
	e.str(p.Encoding)
	e.sp()
	e.num(uint64(p.Size))
	if p.Message != nil {
		e.sp()
		if p.Envelope != nil {
			e.envelope(p.Envelope)
		} else {
			e.envelope(&Envelope{})
		}
		e.sp()
		e.bodyPart(p.Message, extended)
	}
	if p.HasLines {
		e.sp()
		e.num(uint64(p.Lines))
	}
	if extended {
		e.sp()
		e.nstrPtr(p.MD5)
		e.partExtTail(p)
	}
	e.byte1(')')
}

// partExtTail writes SP disposition SP language SP location.
func (e *Encoder) partExtTail(p *BodyPart) {
	e.sp()
	if p.Disposition == nil {
		e.nil_()
	} else {
		e.byte1('(')
		e.str(*p.Disposition)
		e.sp()
		e.paramList(p.DispositionParams)
		e.byte1(')')
	}
	e.sp()
	if len(p.Language) == 0 {
		e.nil_()
	} else {
		e.byte1('(')
		for i, l := range p.Language {
			if i > 0 {
				e.sp()
			}
			e.str(l)
		}
		e.byte1(')')
	}
	e.sp()
	e.nstrPtr(p.Location)
}

// paramList writes a body-fld-param in the given order, NIL when empty.
func (e *Encoder) paramList(l []Param) {
	if len(l) == 0 {
		e.nil_()
		return
	}
	e.byte1('(')
	for i, p := range l {
		if i > 0 {
			e.sp()
		}
		e.str(p.Name)
		e.sp()
		e.str(p.Value)
	}
	e.byte1(')')
}

// FlagNames writes FLAGS (...) from flag names as the store renders
// them, which saves converting them to imap.Flag per message.
func (w *FetchWriter) FlagNames(names []string) {
	w.item("FLAGS (")
	for i, f := range names {
		if i > 0 {
			w.e.sp()
		}
		w.e.raw(f)
	}
	w.e.byte1(')')
}

// NumberItem writes an item with a number value, as BINARY.SIZE[...] n, for
// names the other methods do not build.
func (w *FetchWriter) NumberItem(name string, n uint64) {
	w.item(name)
	w.e.sp()
	w.e.num(n)
}
