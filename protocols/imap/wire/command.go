package wire

import (
	"bytes"
	"io"

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
	LSUB bool
	// Extended is set when the command used RFC 5258's syntax: a
	// selection list, a parenthesized pattern list or RETURN, even an
	// empty one. Then "" is an ordinary pattern, not the request for
	// the hierarchy delimiter, and only the attributes asked for are
	// returned.
	Extended bool
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
	utf8    bool // the message being read is a UTF8 data item: ")" follows it
}

// AppendMessage is one message of an APPEND.
type AppendMessage struct {
	Options imap.AppendOptions
	// Binary is set for a literal8 (RFC 3516 BINARY): the message may
	// contain NUL octets and is not to be content-transfer-decoded.
	Binary bool
	// UTF8 is set for RFC 6855's UTF8 data item, UTF8 (~{n}): a message
	// that may carry UTF-8 header fields (message/global), to be stored
	// as sent. The session refuses it with BAD unless UTF8=ACCEPT is
	// enabled; Binary is not set for it.
	UTF8 bool
	Size int64
	Body io.Reader
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
	// Conditional is set when UNCHANGEDSINCE was given (its value may be 0).
	Conditional bool
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
			r.tag = r.longTag
			if serr := r.skip(); serr != nil {
				return nil, serr
			}
			e := r.bad("Command line too long")
			e.Code = imap.ResponseCodeTooBig
			return nil, e
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
	tag := r.word(isTagChar)
	if len(tag) == 0 || (r.peek() != ' ' && !r.atEnd()) {
		return nil, r.bad("Invalid tag")
	}
	r.tag = string(tag)
	// Octets no command text may hold get a precise answer rather than
	// one about whichever token they happen to fall in.
	if bytes.IndexByte(r.buf, 0) >= 0 {
		return nil, r.bad("NUL octet in command")
	}
	if bytes.IndexByte(r.buf, '\r') >= 0 {
		return nil, r.bad("CR without LF in command")
	}
	if err := r.sp(); err != nil {
		return nil, r.bad("Missing command")
	}
	name, err := r.keyword()
	if err != nil {
		return nil, r.bad("Missing command")
	}
	if !isASCII(name) {
		// Not echoed: response texts are 7-bit.
		return nil, r.bad("Invalid command name")
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
		if !isASCII(name) {
			return nil, r.bad("Invalid command name")
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

// isTagChar reports whether c may be part of a tag: any ASTRING-CHAR but
// "+" (RFC 9051), and 7-bit, since the tag is echoed in the answer.
func isTagChar(c byte) bool { return c < 0x80 && c != '+' && isAStringChar(c) }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
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
	"IDLE": noArgs, "UNAUTHENTICATE": noArgs,
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
