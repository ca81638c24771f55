package wire

import (
	"encoding/base64"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// Command is one client command. Name is the upper-case command name,
// "UID FETCH" style for UID commands. Args holds the typed arguments: nil
// for commands without any (CAPABILITY, NOOP, LOGOUT, STARTTLS, CHECK,
// CLOSE, UNSELECT, NAMESPACE, IDLE, EXPUNGE), otherwise one of the
// pointer types below, as documented on each.
type Command struct {
	Tag  string
	Name string
	Args any
}

// Login is LOGIN's arguments.
type Login struct{ Username, Password string }

// Authenticate is AUTHENTICATE's: the mechanism (upper-case) and the
// SASL-IR initial response (RFC 4959), decoded; "=" is an empty one.
type Authenticate struct {
	Mechanism       string
	InitialResponse []byte
	HasInitial      bool
}

// MailboxArg is the argument of DELETE, SUBSCRIBE, UNSUBSCRIBE and
// GETQUOTAROOT.
type MailboxArg struct{ Mailbox string }

// Rename is RENAME's.
type Rename struct{ Mailbox, NewName string }

// Create is CREATE's, with CREATE-SPECIAL-USE's (USE (...)) (RFC 6154).
type Create struct {
	Mailbox string
	Options imap.CreateOptions
}

// Select is SELECT's and EXAMINE's (ReadOnly), with RFC 7162's
// (CONDSTORE) and (QRESYNC (...)) parameters.
type Select struct {
	Mailbox  string
	ReadOnly bool
	Options  imap.SelectOptions
	QResync  *QResync
}

// QResync is SELECT's QRESYNC parameter (RFC 7162 section 3.2.5).
type QResync struct {
	UIDValidity uint32
	ModSeq      uint64
	KnownUIDs   imap.UIDSet // nil when absent
	SeqMatch    *SeqMatch   // nil when absent
}

// SeqMatch is QRESYNC's known sequence numbers and their UIDs.
type SeqMatch struct {
	SeqNums imap.SeqSet
	UIDs    imap.UIDSet
}

// List is LIST's and LSUB's (LSUB set), with LIST-EXTENDED's selection
// and return options (RFC 5258, 5819 LIST-STATUS, 6154 SPECIAL-USE).
type List struct {
	LSUB     bool
	Ref      string
	Patterns []string
	Options  imap.ListOptions
}

// Status is STATUS's.
type Status struct {
	Mailbox string
	Options imap.StatusOptions
}

// Append is APPEND's. Its messages are streamed: call Next for each
// (MULTIAPPEND, RFC 3502, may send several) until it returns nil, reading
// each message's Body before the next call. Stopping early is allowed:
// the next ReadCommand skips what is left.
type Append struct {
	Mailbox string
	r       *Reader
	started bool
	done    bool
	body    *io.LimitedReader
}

// AppendMessage is one message of an APPEND.
type AppendMessage struct {
	Options imap.AppendOptions
	// Binary is set for a literal8 (RFC 3516 BINARY): the message may
	// contain NUL octets and is not to be content-transfer-decoded.
	Binary bool
	Size   int64
	Body   io.Reader
}

// Next returns the next message, or nil after the last. An error is an
// *Error to answer (the rest of the command is skipped) or an I/O error.
func (a *Append) Next() (*AppendMessage, error) {
	if a.done {
		return nil, nil
	}
	m, err := a.r.nextAppend(a)
	if err != nil || m == nil {
		a.done = true
		a.r.open = nil
		if e, ok := err.(*Error); ok && !e.Fatal {
			if serr := a.r.skip(); serr != nil {
				return nil, serr
			}
		}
	}
	return m, err
}

// Fetch is FETCH's and UID FETCH's, with CONDSTORE/QRESYNC modifiers
// (CHANGEDSINCE, VANISHED). Macros (ALL, FAST, FULL) are expanded. For UID
// FETCH, Options.UID is set as RFC 9051 requires.
type Fetch struct {
	UID      bool
	NumSet   imap.NumSet
	Options  imap.FetchOptions
	RFC822   RFC822Items
	Vanished bool
}

// Store is STORE's and UID STORE's, with UNCHANGEDSINCE (RFC 7162).
type Store struct {
	UID     bool
	NumSet  imap.NumSet
	Flags   imap.StoreFlags
	Options imap.StoreOptions
}

// Copy is COPY's and MOVE's (Move set, RFC 6851), UID or not.
type Copy struct {
	UID     bool
	Move    bool
	NumSet  imap.NumSet
	Mailbox string
}

// UIDExpunge is UID EXPUNGE's (RFC 4315).
type UIDExpunge struct{ UIDs imap.UIDSet }

// Search is SEARCH's and UID SEARCH's. Return is nil for a classic SEARCH
// answered with * SEARCH; otherwise the client asked for ESEARCH (RFC
// 4731) and Return says what: RETURN () means ALL. Charset is upper-case,
// "" when not given. RECENT, NEW and OLD are criteria on FlagRecent.
type Search struct {
	UID      bool
	Charset  string
	Criteria imap.SearchCriteria
	Return   *imap.SearchOptions
}

// SortKey is a sort-key of RFC 5256, or RFC 5957's DISPLAYFROM and
// DISPLAYTO.
type SortKey string

const (
	SortArrival     SortKey = "ARRIVAL"
	SortCc          SortKey = "CC"
	SortDate        SortKey = "DATE"
	SortFrom        SortKey = "FROM"
	SortSize        SortKey = "SIZE"
	SortSubject     SortKey = "SUBJECT"
	SortTo          SortKey = "TO"
	SortDisplayFrom SortKey = "DISPLAYFROM"
	SortDisplayTo   SortKey = "DISPLAYTO"
)

// SortCriterion is one sort criterion.
type SortCriterion struct {
	Key     SortKey
	Reverse bool
}

// Sort is SORT's and UID SORT's. Return is non-nil for ESORT (RFC 5267).
type Sort struct {
	UID      bool
	Keys     []SortCriterion
	Charset  string
	Criteria imap.SearchCriteria
	Return   *imap.SearchOptions
}

// Thread is THREAD's and UID THREAD's (RFC 5256).
type Thread struct {
	UID       bool
	Algorithm imap.ThreadAlgorithm
	Charset   string
	Criteria  imap.SearchCriteria
}

// Enable is ENABLE's (RFC 5161), capabilities upper-cased.
type Enable struct{ Caps []imap.Cap }

// IDField is one field of ID (RFC 2971); Value nil is NIL.
type IDField struct {
	Key   string
	Value *string
}

// ID is ID's: nil Fields for ID NIL.
type ID struct{ Fields []IDField }

// Compress is COMPRESS's (RFC 4978), mechanism upper-cased.
type Compress struct{ Mechanism string }

// QuotaRoot names a quota root: GETQUOTA's argument.
type QuotaRoot struct{ Root string }

// QuotaLimit is one resource limit of SETQUOTA.
type QuotaLimit struct {
	Resource imap.QuotaResourceType
	Limit    int64
}

// SetQuota is SETQUOTA's (RFC 9208).
type SetQuota struct {
	Root   string
	Limits []QuotaLimit
}

// ReadCommand reads the next command. It returns an *Error for a command
// to refuse (see Error), an I/O error (io.EOF at a clean end) otherwise.
// A previous APPEND not read to its end is skipped first.
func (r *Reader) ReadCommand() (*Command, error) {
	if a := r.open; a != nil {
		r.open = nil
		if !a.done {
			a.done = true
			if a.body != nil {
				if _, err := io.Copy(io.Discard, a.body); err != nil {
					return nil, err
				}
				if err := r.readLine(); err != nil && err != errLineTooLong {
					return nil, err
				}
			}
			if err := r.skip(); err != nil {
				return nil, err
			}
		}
	}
	if cap(r.buf) > 16<<10 {
		r.buf = nil // an idle connection keeps no large line buffer
	}
	for {
		r.tag, r.name, r.tokens, r.depth, r.total = "", "", 0, 0, 0
		err := r.readLine()
		if err == errLineTooLong {
			if serr := r.skip(); serr != nil {
				return nil, serr
			}
			return nil, r.bad("Line too long")
		}
		if err != nil {
			return nil, err
		}
		if len(r.buf) == 0 && !r.marked {
			continue // an empty line is ignored, as Dovecot does
		}
		cmd, err := r.command()
		if err != nil {
			if e, ok := err.(*Error); ok && !e.Fatal {
				if serr := r.skip(); serr != nil {
					return nil, serr
				}
			}
			return nil, err
		}
		return cmd, nil
	}
}

func (r *Reader) command() (*Command, error) {
	tag := r.word(func(c byte) bool { return c != '+' && isAStringChar(c) })
	if len(tag) == 0 || (r.peek() != ' ' && !r.atEnd()) {
		return nil, r.bad("Invalid tag")
	}
	r.tag = string(tag)
	if err := r.sp(); err != nil {
		return nil, r.bad("Missing command")
	}
	name, err := r.keyword()
	if err != nil {
		return nil, r.bad("Missing command")
	}
	cmd := &Command{Tag: r.tag, Name: name}
	uid := false
	if name == "UID" {
		if err := r.sp(); err != nil {
			return nil, err
		}
		if name, err = r.keyword(); err != nil {
			return nil, err
		}
		uid = true
		cmd.Name = "UID " + name
	}
	r.name = cmd.Name
	p := parsers[name]
	if p == nil || (uid && !uidCommands[name]) {
		return nil, r.bad("Unknown command")
	}
	if cmd.Args, err = p(r, uid); err != nil {
		return nil, err
	}
	if _, ok := cmd.Args.(*Append); ok {
		return cmd, nil // its messages are read by Append.Next
	}
	if err := r.eol(); err != nil {
		return nil, err
	}
	return cmd, nil
}

type parser func(r *Reader, uid bool) (any, error)

// uidCommands may follow UID.
var uidCommands = map[string]bool{"FETCH": true, "STORE": true, "SEARCH": true, "COPY": true,
	"MOVE": true, "EXPUNGE": true, "SORT": true, "THREAD": true}

// parsers is the fixed table of commands; a read-only lookup, never
// modified.
var parsers = map[string]parser{
	"CAPABILITY": noArgs, "NOOP": noArgs, "LOGOUT": noArgs, "STARTTLS": noArgs,
	"CHECK": noArgs, "CLOSE": noArgs, "UNSELECT": noArgs, "NAMESPACE": noArgs,
	"IDLE":         noArgs,
	"LOGIN":        parseLogin,
	"AUTHENTICATE": parseAuthenticate,
	"SELECT":       parseSelect,
	"EXAMINE":      parseSelect,
	"CREATE":       parseCreate,
	"DELETE":       parseMailboxArg,
	"SUBSCRIBE":    parseMailboxArg,
	"UNSUBSCRIBE":  parseMailboxArg,
	"GETQUOTAROOT": parseMailboxArg,
	"RENAME":       parseRename,
	"LIST":         parseList,
	"LSUB":         parseList,
	"STATUS":       parseStatus,
	"APPEND":       parseAppend,
	"EXPUNGE":      parseExpunge,
	"FETCH":        parseFetch,
	"STORE":        parseStore,
	"COPY":         parseCopy,
	"MOVE":         parseCopy,
	"SEARCH":       parseSearch,
	"SORT":         parseSort,
	"THREAD":       parseThread,
	"ENABLE":       parseEnable,
	"ID":           parseID,
	"COMPRESS":     parseCompress,
	"GETQUOTA":     parseGetQuota,
	"SETQUOTA":     parseSetQuota,
}

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
	if !r.isLiteralNext() {
		return nil, r.bad("Expected a message literal at %q", r.near())
	}
	size, lit8, err := r.literalHeader(r.lim.Append, true, false)
	if err != nil {
		return nil, err
	}
	a.started = true
	m.Binary = lit8
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
