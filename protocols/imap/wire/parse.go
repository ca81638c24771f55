package wire

import (
	"encoding/base64"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// The parsers of the commands other than FETCH (parse_fetch.go) and
// SEARCH, SORT and THREAD (parse_search.go), in the order of the parsers
// table.

func noArgs(r *Reader, uid bool) (any, error) { return nil, nil }

func parseLogin(r *Reader, _ bool) (any, error) {
	var a Login
	var err error
	if err = r.sp(); err == nil {
		if a.Username, err = r.astring(); err == nil {
			if err = r.sp(); err == nil {
				a.Password, err = r.astring()
			}
		}
	}
	return &a, err
}

func parseAuthenticate(r *Reader, _ bool) (any, error) {
	var a Authenticate
	if err := r.sp(); err != nil {
		return nil, err
	}
	mech, err := r.keyword()
	if err != nil {
		return nil, err
	}
	a.Mechanism = mech
	if r.maybeSP() {
		resp := r.word(func(c byte) bool { return c != ' ' })
		if err := r.token(); err != nil {
			return nil, err
		}
		a.HasInitial = true
		if string(resp) != "=" {
			a.InitialResponse, err = base64.StdEncoding.DecodeString(string(resp))
			if err != nil || len(resp) == 0 {
				return nil, r.bad("Invalid base64 initial response")
			}
		} else {
			a.InitialResponse = []byte{}
		}
	}
	return &a, nil
}

// ReadLine reads one line outside a command: a SASL response during
// AUTHENTICATE, or DONE ending IDLE. It is bounded by Limits.Line; a
// longer line is an *Error after which the line has been discarded.
func (r *Reader) ReadLine() (string, error) {
	r.name = ""
	r.total = 0
	err := r.readLine()
	if err == errLineTooLong {
		r.marked = false
		return "", &Error{Tag: r.errTag(), Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeTooBig, Text: "Line too long"}
	}
	if err != nil {
		return "", err
	}
	r.marked = false
	r.pos = len(r.buf)
	return string(r.buf), nil
}

func parseMailboxArg(r *Reader, _ bool) (any, error) {
	if err := r.sp(); err != nil {
		return nil, err
	}
	m, err := r.mailbox()
	return &MailboxArg{Mailbox: m}, err
}

func parseRename(r *Reader, _ bool) (any, error) {
	var a Rename
	var err error
	if err = r.sp(); err == nil {
		if a.Mailbox, err = r.mailbox(); err == nil {
			if err = r.sp(); err == nil {
				a.NewName, err = r.mailbox()
			}
		}
	}
	return &a, err
}

func parseCreate(r *Reader, _ bool) (any, error) {
	var a Create
	if err := r.sp(); err != nil {
		return nil, err
	}
	var err error
	if a.Mailbox, err = r.mailbox(); err != nil {
		return nil, err
	}
	if !r.maybeSP() {
		return &a, nil
	}
	err = r.list(func() error {
		k, err := r.keyword()
		if err != nil {
			return err
		}
		if k != "USE" {
			return r.bad("Unknown CREATE parameter %s", k)
		}
		if err := r.sp(); err != nil {
			return err
		}
		return r.list(func() error {
			f, err := r.flag(false)
			if err == nil && !strings.HasPrefix(string(f), "\\") {
				return r.bad("Invalid special-use attribute %q", f)
			}
			a.Options.SpecialUse = append(a.Options.SpecialUse, imap.MailboxAttr(f))
			return err
		})
	})
	return &a, err
}

func parseSelect(r *Reader, _ bool) (any, error) {
	a := Select{ReadOnly: r.name == "EXAMINE"}
	if err := r.sp(); err != nil {
		return nil, err
	}
	var err error
	if a.Mailbox, err = r.mailbox(); err != nil {
		return nil, err
	}
	a.Options.ReadOnly = a.ReadOnly
	if !r.maybeSP() {
		return &a, nil
	}
	err = r.list(func() error {
		k, err := r.keyword()
		if err != nil {
			return err
		}
		switch k {
		case "CONDSTORE":
			a.Options.CondStore = true
			return nil
		case "QRESYNC":
			if a.QResync != nil {
				return r.bad("QRESYNC given twice")
			}
			if err := r.sp(); err != nil {
				return err
			}
			a.QResync, err = r.qresync()
			return err
		}
		return r.bad("Unknown SELECT parameter %s", k)
	})
	return &a, err
}

func (r *Reader) qresync() (*QResync, error) {
	var q QResync
	if err := r.expect('('); err != nil {
		return nil, err
	}
	var err error
	if q.UIDValidity, err = r.nzNumber(); err != nil {
		return nil, err
	}
	if err = r.sp(); err != nil {
		return nil, err
	}
	if q.ModSeq, err = r.modSeq(); err != nil {
		return nil, err
	}
	if r.maybeSP() {
		if r.peek() != '(' {
			if q.KnownUIDs, err = r.uidSet(); err != nil {
				return nil, err
			}
			if q.KnownUIDs.Dynamic() {
				return nil, r.bad("known-uids must not contain '*'")
			}
			r.maybeSP()
		}
		if r.peek() == '(' {
			r.pos++
			var m SeqMatch
			if m.SeqNums, err = r.seqSet(); err != nil {
				return nil, err
			}
			if err = r.sp(); err != nil {
				return nil, err
			}
			if m.UIDs, err = r.uidSet(); err != nil {
				return nil, err
			}
			if err = r.expect(')'); err != nil {
				return nil, err
			}
			q.SeqMatch = &m
		}
	}
	return &q, r.expect(')')
}

func parseList(r *Reader, _ bool) (any, error) {
	a := List{LSUB: r.name == "LSUB"}
	if err := r.sp(); err != nil {
		return nil, err
	}
	var err error
	if !a.LSUB && r.peek() == '(' {
		a.Extended = true
		err = r.list(func() error {
			k, err := r.keyword()
			if err != nil {
				return err
			}
			switch k {
			case "SUBSCRIBED":
				a.Options.SelectSubscribed = true
			case "REMOTE":
				a.Options.SelectRemote = true
			case "RECURSIVEMATCH":
				a.Options.SelectRecursiveMatch = true
			case "SPECIAL-USE":
				a.Options.SelectSpecialUse = true
			default:
				return r.bad("Unknown LIST selection option %s", k)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if a.Options.SelectRecursiveMatch && !a.Options.SelectSubscribed && !a.Options.SelectSpecialUse {
			return nil, r.bad("RECURSIVEMATCH needs another selection option")
		}
		if err = r.sp(); err != nil {
			return nil, err
		}
	}
	if a.Ref, err = r.mailbox(); err != nil {
		return nil, err
	}
	if err = r.sp(); err != nil {
		return nil, err
	}
	if !a.LSUB && r.peek() == '(' {
		a.Extended = true
		err = r.list(func() error {
			p, err := r.listMailbox()
			a.Patterns = append(a.Patterns, p)
			return err
		})
		if err == nil && len(a.Patterns) == 0 {
			err = r.bad("Empty pattern list")
		}
	} else {
		var p string
		p, err = r.listMailbox()
		a.Patterns = []string{p}
	}
	if err != nil {
		return nil, err
	}
	if a.LSUB || !r.maybeSP() {
		return &a, nil
	}
	k, err := r.keyword()
	if err != nil {
		return nil, err
	}
	if k != "RETURN" {
		return nil, r.bad("Expected RETURN")
	}
	a.Extended = true
	if err := r.sp(); err != nil {
		return nil, err
	}
	err = r.list(func() error {
		k, err := r.keyword()
		if err != nil {
			return err
		}
		switch k {
		case "SUBSCRIBED":
			a.Options.ReturnSubscribed = true
		case "CHILDREN":
			a.Options.ReturnChildren = true
		case "SPECIAL-USE":
			a.Options.ReturnSpecialUse = true
		case "STATUS":
			if a.Options.ReturnStatus != nil {
				return r.bad("STATUS given twice")
			}
			if err := r.sp(); err != nil {
				return err
			}
			a.Options.ReturnStatus = &imap.StatusOptions{}
			return r.statusItems(a.Options.ReturnStatus)
		default:
			return r.bad("Unknown LIST return option %s", k)
		}
		return nil
	})
	return &a, err
}

func parseStatus(r *Reader, _ bool) (any, error) {
	var a Status
	if err := r.sp(); err != nil {
		return nil, err
	}
	var err error
	if a.Mailbox, err = r.mailbox(); err != nil {
		return nil, err
	}
	if err = r.sp(); err != nil {
		return nil, err
	}
	return &a, r.statusItems(&a.Options)
}

func (r *Reader) statusItems(o *imap.StatusOptions) error {
	n := 0
	err := r.list(func() error {
		n++
		k, err := r.keyword()
		if err != nil {
			return err
		}
		switch k {
		case "MESSAGES":
			o.NumMessages = true
		case "RECENT":
			o.NumRecent = true
		case "UIDNEXT":
			o.UIDNext = true
		case "UIDVALIDITY":
			o.UIDValidity = true
		case "UNSEEN":
			o.NumUnseen = true
		case "DELETED":
			o.NumDeleted = true
		case "SIZE":
			o.Size = true
		case "APPENDLIMIT":
			o.AppendLimit = true
		case "DELETED-STORAGE":
			o.DeletedStorage = true
		case "HIGHESTMODSEQ":
			o.HighestModSeq = true
		default:
			return r.bad("Unknown STATUS item %s", k)
		}
		return nil
	})
	if err == nil && n == 0 {
		err = r.bad("Empty STATUS item list")
	}
	return err
}

func parseAppend(r *Reader, _ bool) (any, error) {
	if err := r.sp(); err != nil {
		return nil, err
	}
	m, err := r.mailbox()
	if err != nil {
		return nil, err
	}
	a := &Append{Mailbox: m, r: r}
	r.open = a
	return a, nil
}

// nextAppend reads the next message header of an APPEND: SP [flag-list
// SP] [date-time SP] literal, or the end of the command.
func (r *Reader) nextAppend(a *Append) (*AppendMessage, error) {
	if a.body != nil {
		// The previous message: drain what the caller left, then
		// continue on the line after it.
		if _, err := io.Copy(io.Discard, a.body); err != nil {
			return nil, err
		}
		a.body = nil
		if err := r.readLine(); err != nil {
			if err == errLineTooLong {
				return nil, r.bad("Line too long")
			}
			return nil, err
		}
		if a.utf8 {
			a.utf8 = false
			if err := r.expect(')'); err != nil {
				return nil, err
			}
		}
	}
	if a.started && r.atEnd() && !r.marked {
		return nil, nil
	}
	if err := r.sp(); err != nil {
		return nil, err
	}
	var m AppendMessage
	var err error
	if r.peek() == '(' {
		if m.Options.Flags, err = r.flagList(); err != nil {
			return nil, err
		}
		if err = r.sp(); err != nil {
			return nil, err
		}
	}
	if r.peek() == '"' {
		if m.Options.Time, err = r.dateTime(); err != nil {
			return nil, err
		}
		if err = r.sp(); err != nil {
			return nil, err
		}
	}
	if c := r.peek(); c == 'U' || c == 'u' {
		// RFC 6855 §4: "UTF8" SP "(" literal8 ")". Whether the session
		// allows it (ENABLE UTF8=ACCEPT) is the session's to say.
		k, err := r.keyword()
		if err != nil {
			return nil, err
		}
		if k != "UTF8" {
			return nil, r.bad("Unknown APPEND data item %s", k)
		}
		if err = r.sp(); err != nil {
			return nil, err
		}
		if err = r.expect('('); err != nil {
			return nil, err
		}
		// Checked before literalHeader invites the data: refused here,
		// a synchronizing literal is never sent.
		if r.peek() != '~' {
			return nil, r.bad("UTF8 data must be a literal8 at %q", r.near())
		}
		m.UTF8 = true
	}
	if !r.isLiteralNext() {
		return nil, r.bad("Expected a message literal at %q", r.near())
	}
	size, lit8, err := r.literalHeader(r.lim.Append, true, false)
	if err != nil {
		return nil, err
	}
	a.started = true
	a.utf8 = m.UTF8
	m.Binary = lit8 && !m.UTF8
	m.Size = size
	a.body = &io.LimitedReader{R: r.br, N: size}
	m.Body = a.body
	return &m, nil
}

func parseExpunge(r *Reader, uid bool) (any, error) {
	if !uid {
		return nil, nil
	}
	if err := r.sp(); err != nil {
		return nil, err
	}
	set, err := r.uidSet()
	return &UIDExpunge{UIDs: set}, err
}

func parseCopy(r *Reader, uid bool) (any, error) {
	a := Copy{UID: uid, Move: strings.HasSuffix(r.name, "MOVE")}
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
	a.Mailbox, err = r.mailbox()
	return &a, err
}

func parseStore(r *Reader, uid bool) (any, error) {
	a := Store{UID: uid}
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
		err = r.list(func() error {
			k, err := r.keyword()
			if err != nil {
				return err
			}
			if k != "UNCHANGEDSINCE" {
				return r.bad("Unknown STORE modifier %s", k)
			}
			if err := r.sp(); err != nil {
				return err
			}
			a.Conditional = true
			a.Options.UnchangedSince, err = r.number64()
			return err
		})
		if err != nil {
			return nil, err
		}
		if err = r.sp(); err != nil {
			return nil, err
		}
	}
	k, err := r.keyword()
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(k, "+"):
		a.Flags.Op, k = imap.StoreFlagsAdd, k[1:]
	case strings.HasPrefix(k, "-"):
		a.Flags.Op, k = imap.StoreFlagsDel, k[1:]
	default:
		a.Flags.Op = imap.StoreFlagsSet
	}
	switch k {
	case "FLAGS":
	case "FLAGS.SILENT":
		a.Flags.Silent = true
	default:
		return nil, r.bad("Unknown STORE item %s", k)
	}
	if err = r.sp(); err != nil {
		return nil, err
	}
	if r.peek() == '(' {
		a.Flags.Flags, err = r.flagList()
		return &a, err
	}
	// RFC 9051 also allows the flags without parentheses.
	a.Flags.Flags = []imap.Flag{}
	for {
		f, err := r.flag(false)
		if err != nil {
			return nil, err
		}
		a.Flags.Flags = append(a.Flags.Flags, f)
		if !r.maybeSP() {
			return &a, nil
		}
	}
}

func parseEnable(r *Reader, _ bool) (any, error) {
	var a Enable
	for {
		if err := r.sp(); err != nil {
			if len(a.Caps) > 0 && r.atEnd() {
				return &a, nil
			}
			return nil, err
		}
		k, err := r.keyword()
		if err != nil {
			return nil, err
		}
		a.Caps = append(a.Caps, imap.Cap(k))
		if r.atEnd() {
			return &a, nil
		}
	}
}

// RFC 2971 section 3.3 bounds.
const (
	idMaxFields = 30
	idMaxKey    = 30
	idMaxValue  = 1024
)

func parseID(r *Reader, _ bool) (any, error) {
	if err := r.sp(); err != nil {
		return nil, err
	}
	var a ID
	if r.peek() != '(' {
		v, err := r.nstring()
		if err != nil || v != nil {
			return nil, r.bad("Expected a list or NIL")
		}
		return &a, nil
	}
	a.Fields = []IDField{}
	err := r.list(func() error {
		k, err := r.str()
		if err != nil {
			return err
		}
		if err := r.sp(); err != nil {
			return err
		}
		v, err := r.nstring()
		if err != nil {
			return err
		}
		if len(k) > idMaxKey || (v != nil && len(*v) > idMaxValue) {
			return r.bad("ID field too long")
		}
		if len(a.Fields) == idMaxFields {
			return r.bad("Too many ID fields")
		}
		a.Fields = append(a.Fields, IDField{Key: k, Value: v})
		return nil
	})
	return &a, err
}

func parseCompress(r *Reader, _ bool) (any, error) {
	if err := r.sp(); err != nil {
		return nil, err
	}
	k, err := r.keyword()
	return &Compress{Mechanism: k}, err
}

func parseGetQuota(r *Reader, _ bool) (any, error) {
	if err := r.sp(); err != nil {
		return nil, err
	}
	root, err := r.astring()
	return &QuotaRoot{Root: root}, err
}

func parseSetQuota(r *Reader, _ bool) (any, error) {
	var a SetQuota
	var err error
	if err = r.sp(); err != nil {
		return nil, err
	}
	if a.Root, err = r.astring(); err != nil {
		return nil, err
	}
	if err = r.sp(); err != nil {
		return nil, err
	}
	a.Limits = []QuotaLimit{}
	err = r.list(func() error {
		k, err := r.keyword()
		if err != nil {
			return err
		}
		if err := r.sp(); err != nil {
			return err
		}
		n, err := r.number64()
		a.Limits = append(a.Limits, QuotaLimit{Resource: imap.QuotaResourceType(k), Limit: int64(n)})
		return err
	})
	return &a, err
}
