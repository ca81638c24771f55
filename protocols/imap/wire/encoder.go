package wire

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
)

// Encoder writes server responses. Everything goes to a bufio.Writer,
// which the session flushes at the end of each command (Flush) and
// before it waits for the client (continuation requests). The first
// write error sticks: later writes do nothing and Flush returns it.
type Encoder struct {
	w *bufio.Writer
	// UTF8 is set once the client enabled UTF8=ACCEPT (RFC 6855):
	// quoted strings may then carry UTF-8; otherwise 8-bit strings are
	// sent as literals.
	UTF8    bool
	scratch []byte
	err     error
}

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w *bufio.Writer) *Encoder {
	return &Encoder{w: w, scratch: make([]byte, 0, 64)}
}

// Reset makes the Encoder write to w (after STARTTLS or COMPRESS).
func (e *Encoder) Reset(w *bufio.Writer) { e.w = w }

// Flush sends what is buffered; it returns the first error of any write.
func (e *Encoder) Flush() error {
	if e.err == nil {
		e.err = e.w.Flush()
	}
	return e.err
}

// Err returns the first write error.
func (e *Encoder) Err() error { return e.err }

func (e *Encoder) raw(s string) {
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

func (e *Encoder) rawBytes(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *Encoder) byte1(c byte) {
	if e.err == nil {
		e.err = e.w.WriteByte(c)
	}
}

func (e *Encoder) sp()   { e.byte1(' ') }
func (e *Encoder) crlf() { e.raw("\r\n") }

func (e *Encoder) num(n uint64) {
	e.scratch = strconv.AppendUint(e.scratch[:0], n, 10)
	e.rawBytes(e.scratch)
}

func (e *Encoder) nil_() { e.raw("NIL") }

// maxQuoted is the longest string sent quoted; longer ones are literals.
const maxQuoted = 1024

// quotable reports whether s can be a quoted string.
func (e *Encoder) quotable(s string) bool {
	if len(s) > maxQuoted {
		return false
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\r' || c == '\n' || c == 0:
			return false
		case c >= 0x80:
			ascii = false
		}
	}
	return ascii || (e.UTF8 && utf8.ValidString(s))
}

// str writes s as a string: quoted when it can be, a literal otherwise
// (CR, LF, NUL, 8-bit without UTF8=ACCEPT, or long).
func (e *Encoder) str(s string) {
	if !e.quotable(s) {
		e.literalHeader(int64(len(s)), false)
		e.raw(s)
		return
	}
	e.byte1('"')
	start := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			e.raw(s[start:i])
			e.byte1('\\')
			start = i
		}
	}
	e.raw(s[start:])
	e.byte1('"')
}

// nstr writes s as a string, or NIL when it is empty.
func (e *Encoder) nstr(s string) {
	if s == "" {
		e.nil_()
		return
	}
	e.str(s)
}

func (e *Encoder) nstrPtr(s *string) {
	if s == nil {
		e.nil_()
		return
	}
	e.str(*s)
}

// astr writes s as an atom when it is one (and not NIL), else a string.
func (e *Encoder) astr(s string) {
	if s != "" && !strings.EqualFold(s, "NIL") {
		ok := true
		for i := 0; i < len(s) && ok; i++ {
			ok = isAStringChar(s[i]) && s[i] < 0x80
		}
		if ok {
			e.raw(s)
			return
		}
	}
	e.str(s)
}

func (e *Encoder) literalHeader(size int64, lit8 bool) {
	if lit8 {
		e.byte1('~')
	}
	e.byte1('{')
	e.num(uint64(size))
	e.raw("}\r\n")
}

func (e *Encoder) flagList(flags []imap.Flag) {
	e.byte1('(')
	for i, f := range flags {
		if i > 0 {
			e.sp()
		}
		e.raw(string(f))
	}
	e.byte1(')')
}

func (e *Encoder) numSet(s imap.NumSet) { e.raw(s.String()) }

// Code is a response code with its arguments, as written between [ and ].
type Code string

// Response codes with arguments (RFC 9051, 4315 UIDPLUS, 7162 CONDSTORE).
func CodeUIDValidity(v uint32) Code { return Code("UIDVALIDITY " + strconv.FormatUint(uint64(v), 10)) }
func CodeUIDNext(uid imap.UID) Code { return Code("UIDNEXT " + strconv.FormatUint(uint64(uid), 10)) }
func CodeUnseen(seq uint32) Code    { return Code("UNSEEN " + strconv.FormatUint(uint64(seq), 10)) }
func CodeHighestModSeq(m uint64) Code {
	return Code("HIGHESTMODSEQ " + strconv.FormatUint(m, 10))
}
func CodeAppendUID(validity uint32, uid imap.UID) Code {
	return Code(fmt.Sprintf("APPENDUID %d %d", validity, uid))
}
func CodeCopyUID(validity uint32, src, dst imap.UIDSet) Code {
	return Code(fmt.Sprintf("COPYUID %d %s %s", validity, src, dst))
}
func CodeModified(set imap.NumSet) Code { return Code("MODIFIED " + set.String()) }
func CodePermanentFlags(flags []imap.Flag) Code {
	parts := make([]string, len(flags))
	for i, f := range flags {
		parts[i] = string(f)
	}
	return Code("PERMANENTFLAGS (" + strings.Join(parts, " ") + ")")
}
func CodeCapability(caps []imap.Cap) Code {
	parts := make([]string, len(caps))
	for i, c := range caps {
		parts[i] = string(c)
	}
	return Code("CAPABILITY " + strings.Join(parts, " "))
}

// Status writes a status response: tag "*" for an untagged one, type OK,
// NO, BAD, PREAUTH or BYE, an optional code, and text (never empty on
// the wire: RFC 9051 requires text).
func (e *Encoder) Status(tag string, typ imap.StatusResponseType, code Code, text string) {
	e.raw(tag)
	e.sp()
	e.raw(string(typ))
	e.sp()
	if code != "" {
		e.byte1('[')
		e.raw(string(code))
		e.raw("] ")
	}
	if text == "" {
		text = string(typ)
	}
	e.raw(textSafe(text))
	e.crlf()
}

// textSafe keeps a human-readable text on one line and free of control
// octets and invalid UTF-8, which a text echoing the client's words (an
// unknown command or keyword) could otherwise carry: CR and LF become
// spaces, the others "?".
func textSafe(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			clean = false
			break
		}
	}
	if clean || (utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\r' || r == '\n':
			b.WriteByte(' ')
		case r == utf8.RuneError || unicode.IsControl(r):
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Continue writes a continuation request.
func (e *Encoder) Continue(text string) {
	if text == "" {
		text = "Ready"
	}
	e.raw("+ ")
	e.raw(textSafe(text))
	e.crlf()
}

// ContinueBase64 writes a SASL challenge.
func (e *Encoder) ContinueBase64(challenge string) {
	e.raw("+ ")
	e.raw(challenge)
	e.crlf()
}

func (e *Encoder) capList(name string, caps []imap.Cap) {
	e.raw("* ")
	e.raw(name)
	for _, c := range caps {
		e.sp()
		e.raw(string(c))
	}
	e.crlf()
}

// Capability writes * CAPABILITY.
func (e *Encoder) Capability(caps []imap.Cap) { e.capList("CAPABILITY", caps) }

// Enabled writes * ENABLED (RFC 5161).
func (e *Encoder) Enabled(caps []imap.Cap) { e.capList("ENABLED", caps) }

// Flags writes * FLAGS.
func (e *Encoder) Flags(flags []imap.Flag) {
	e.raw("* FLAGS ")
	e.flagList(flags)
	e.crlf()
}

func (e *Encoder) numResp(n uint32, name string) {
	e.raw("* ")
	e.num(uint64(n))
	e.raw(name)
}

// Exists writes * n EXISTS.
func (e *Encoder) Exists(n uint32) { e.numResp(n, " EXISTS\r\n") }

// Recent writes * n RECENT (IMAP4rev1 sessions only).
func (e *Encoder) Recent(n uint32) { e.numResp(n, " RECENT\r\n") }

// Expunge writes * n EXPUNGE.
func (e *Encoder) Expunge(seq uint32) { e.numResp(seq, " EXPUNGE\r\n") }

// Vanished writes * VANISHED [(EARLIER)] uids (RFC 7162 QRESYNC).
func (e *Encoder) Vanished(uids imap.UIDSet, earlier bool) {
	if len(uids) == 0 {
		return // RFC 7162 has no empty VANISHED
	}
	e.raw("* VANISHED ")
	if earlier {
		e.raw("(EARLIER) ")
	}
	e.numSet(uids)
	e.crlf()
}

// List writes * LIST (or * LSUB) with LIST-EXTENDED's CHILDINFO and
// OLDNAME data; a LIST-STATUS answer is a separate Status call.
func (e *Encoder) List(d *imap.ListData, lsub bool) {
	if lsub {
		e.raw("* LSUB (")
	} else {
		e.raw("* LIST (")
	}
	for i, a := range d.Attrs {
		if i > 0 {
			e.sp()
		}
		e.raw(string(a))
	}
	e.raw(") ")
	if d.Delim == 0 {
		e.nil_()
	} else {
		e.str(string(d.Delim))
	}
	e.sp()
	e.astr(d.Mailbox)
	if d.ChildInfo != nil || d.OldName != "" {
		e.raw(" (")
		sep := ""
		if d.ChildInfo != nil {
			e.raw(`"CHILDINFO" (`)
			if d.ChildInfo.Subscribed {
				e.raw(`"SUBSCRIBED"`)
			}
			e.byte1(')')
			sep = " "
		}
		if d.OldName != "" {
			e.raw(sep)
			e.raw(`"OLDNAME" (`)
			e.astr(d.OldName)
			e.byte1(')')
		}
		e.byte1(')')
	}
	e.crlf()
}

// StatusData writes * STATUS with the items d has.
func (e *Encoder) StatusData(d *imap.StatusData) {
	e.raw("* STATUS ")
	e.astr(d.Mailbox)
	e.raw(" (")
	sep := ""
	item := func(name string, n uint64) {
		e.raw(sep)
		e.raw(name)
		e.sp()
		e.num(n)
		sep = " "
	}
	if d.NumMessages != nil {
		item("MESSAGES", uint64(*d.NumMessages))
	}
	if d.NumRecent != nil {
		item("RECENT", uint64(*d.NumRecent))
	}
	if d.UIDNext != 0 {
		item("UIDNEXT", uint64(d.UIDNext))
	}
	if d.UIDValidity != 0 {
		item("UIDVALIDITY", uint64(d.UIDValidity))
	}
	if d.NumUnseen != nil {
		item("UNSEEN", uint64(*d.NumUnseen))
	}
	if d.NumDeleted != nil {
		item("DELETED", uint64(*d.NumDeleted))
	}
	if d.Size != nil {
		item("SIZE", uint64(*d.Size))
	}
	if d.AppendLimit != nil {
		item("APPENDLIMIT", uint64(*d.AppendLimit))
	}
	if d.DeletedStorage != nil {
		item("DELETED-STORAGE", uint64(*d.DeletedStorage))
	}
	if d.HighestModSeq != 0 {
		item("HIGHESTMODSEQ", d.HighestModSeq)
	}
	e.byte1(')')
	e.crlf()
}

func (e *Encoder) numList(name string, nums []uint32, modSeq uint64) {
	e.raw("* ")
	e.raw(name)
	for _, n := range nums {
		e.sp()
		e.num(uint64(n))
	}
	if modSeq != 0 {
		e.raw(" (MODSEQ ")
		e.num(modSeq)
		e.byte1(')')
	}
	e.crlf()
}

// Search writes a classic * SEARCH, with CONDSTORE's (MODSEQ n) when
// modSeq is not 0.
func (e *Encoder) Search(nums []uint32, modSeq uint64) { e.numList("SEARCH", nums, modSeq) }

// Sort writes * SORT (RFC 5256).
func (e *Encoder) Sort(nums []uint32, modSeq uint64) { e.numList("SORT", nums, modSeq) }

// ESearch writes * ESEARCH (RFC 4731) for the command tagged tag: the
// items d has (MIN, MAX, COUNT when counted, ALL when not empty).
func (e *Encoder) ESearch(tag string, uid bool, d *imap.SearchData, count bool) {
	e.raw("* ESEARCH (TAG ")
	e.str(tag)
	e.byte1(')')
	if uid {
		e.raw(" UID")
	}
	if d.Min != 0 {
		e.raw(" MIN ")
		e.num(uint64(d.Min))
	}
	if d.Max != 0 {
		e.raw(" MAX ")
		e.num(uint64(d.Max))
	}
	if count {
		e.raw(" COUNT ")
		e.num(uint64(d.Count))
	}
	if d.All != nil && d.All.String() != "" {
		e.raw(" ALL ")
		e.numSet(d.All)
	}
	if d.ModSeq != 0 {
		e.raw(" MODSEQ ")
		e.num(d.ModSeq)
	}
	e.crlf()
}

// ThreadNode is one thread of a THREAD answer: a chain of messages, each
// the parent of the next, then the subthreads of the last.
type ThreadNode struct {
	Chain      []uint32
	SubThreads []ThreadNode
}

// Thread writes * THREAD (RFC 5256).
func (e *Encoder) Thread(threads []ThreadNode) {
	e.raw("* THREAD")
	if len(threads) > 0 {
		e.sp()
	}
	for i := range threads {
		e.thread(&threads[i])
	}
	e.crlf()
}

func (e *Encoder) thread(t *ThreadNode) {
	e.byte1('(')
	for i, n := range t.Chain {
		if i > 0 {
			e.sp()
		}
		e.num(uint64(n))
	}
	if len(t.SubThreads) > 0 && len(t.Chain) > 0 {
		e.sp()
	}
	for i := range t.SubThreads {
		e.thread(&t.SubThreads[i])
	}
	e.byte1(')')
}

// ID writes * ID (RFC 2971); nil fields is NIL.
func (e *Encoder) ID(fields []IDField) {
	e.raw("* ID ")
	if fields == nil {
		e.nil_()
		e.crlf()
		return
	}
	e.byte1('(')
	for i, f := range fields {
		if i > 0 {
			e.sp()
		}
		e.str(f.Key)
		e.sp()
		e.nstrPtr(f.Value)
	}
	e.byte1(')')
	e.crlf()
}

// Namespace writes * NAMESPACE.
func (e *Encoder) Namespace(d *imap.NamespaceData) {
	e.raw("* NAMESPACE ")
	for i, l := range [][]imap.NamespaceDescriptor{d.Personal, d.Other, d.Shared} {
		if i > 0 {
			e.sp()
		}
		if len(l) == 0 {
			e.nil_()
			continue
		}
		e.byte1('(')
		for _, ns := range l {
			e.byte1('(')
			e.str(ns.Prefix)
			e.sp()
			if ns.Delim == 0 {
				e.nil_()
			} else {
				e.str(string(ns.Delim))
			}
			e.byte1(')')
		}
		e.byte1(')')
	}
	e.crlf()
}

// QuotaResource is one resource of a QUOTA answer.
type QuotaResource struct {
	Type         imap.QuotaResourceType
	Usage, Limit int64
}

// Quota writes * QUOTA (RFC 9208).
func (e *Encoder) Quota(root string, res []QuotaResource) {
	e.raw("* QUOTA ")
	e.astr(root)
	e.raw(" (")
	for i, r := range res {
		if i > 0 {
			e.sp()
		}
		e.raw(string(r.Type))
		e.sp()
		e.num(uint64(r.Usage))
		e.sp()
		e.num(uint64(r.Limit))
	}
	e.byte1(')')
	e.crlf()
}

// QuotaRoot writes * QUOTAROOT.
func (e *Encoder) QuotaRoot(mailbox string, roots []string) {
	e.raw("* QUOTAROOT ")
	e.astr(mailbox)
	for _, r := range roots {
		e.sp()
		e.astr(r)
	}
	e.crlf()
}

// Fetch starts * seq FETCH (...): write its items with the returned
// FetchWriter's methods, then call End.
// It is returned by value so that a large answer costs no allocation
// per message.
func (e *Encoder) Fetch(seq uint32) FetchWriter {
	e.raw("* ")
	e.num(uint64(seq))
	e.raw(" FETCH (")
	return FetchWriter{e: e}
}

// FetchWriter writes the items of one FETCH response.
type FetchWriter struct {
	e *Encoder
	n int
}

func (w *FetchWriter) item(name string) {
	if w.n > 0 {
		w.e.sp()
	}
	w.n++
	w.e.raw(name)
}

// End ends the FETCH response.
func (w *FetchWriter) End() {
	w.e.raw(")\r\n")
}

// UID writes UID n.
func (w *FetchWriter) UID(uid imap.UID) {
	w.item("UID ")
	w.e.num(uint64(uid))
}

// Flags writes FLAGS (...).
func (w *FetchWriter) Flags(flags []imap.Flag) {
	w.item("FLAGS ")
	w.e.flagList(flags)
}

// ModSeq writes MODSEQ (n) (RFC 7162).
func (w *FetchWriter) ModSeq(m uint64) {
	w.item("MODSEQ (")
	w.e.num(m)
	w.e.byte1(')')
}

// InternalDateLayout is the date-time of INTERNALDATE and APPEND.
const InternalDateLayout = "02-Jan-2006 15:04:05 -0700"

// InternalDate writes INTERNALDATE "dd-Mon-yyyy hh:mm:ss +zzzz".
func (w *FetchWriter) InternalDate(t time.Time) {
	w.item(`INTERNALDATE "`)
	w.e.raw(t.Format(InternalDateLayout))
	w.e.byte1('"')
}

// RFC822Size writes RFC822.SIZE n.
func (w *FetchWriter) RFC822Size(n int64) {
	w.item("RFC822.SIZE ")
	w.e.num(uint64(n))
}

// BinarySize writes BINARY.SIZE[part] n (RFC 3516).
func (w *FetchWriter) BinarySize(part []int, n int64) {
	w.item("BINARY.SIZE")
	w.e.raw(partString(part, "[", "]"))
	w.e.sp()
	w.e.num(uint64(n))
}

func partString(part []int, open, close string) string {
	var b strings.Builder
	b.WriteString(open)
	for i, p := range part {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(p))
	}
	b.WriteString(close)
	return b.String()
}

// SectionName is the name of a BODY[...] item as answered: the section
// and, for a partial fetch, the origin octet (RFC 9051 section 7.5.2).
func SectionName(s *imap.FetchItemBodySection) string {
	var b strings.Builder
	b.WriteString("BODY[")
	b.WriteString(partString(s.Part, "", ""))
	if s.Specifier != imap.PartSpecifierNone {
		if len(s.Part) > 0 {
			b.WriteByte('.')
		}
		b.WriteString(string(s.Specifier))
		names := s.HeaderFields
		if len(s.HeaderFieldsNot) > 0 {
			names = s.HeaderFieldsNot
			b.WriteString(".FIELDS.NOT (")
		} else if len(names) > 0 {
			b.WriteString(".FIELDS (")
		}
		if len(names) > 0 {
			for i, n := range names {
				if i > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(upperString(n))
			}
			b.WriteByte(')')
		}
	}
	b.WriteByte(']')
	if s.Partial != nil {
		b.WriteString("<" + strconv.FormatInt(s.Partial.Offset, 10) + ">")
	}
	return b.String()
}

// Section writes an item named name (SectionName, "RFC822",
// "RFC822.HEADER", "RFC822.TEXT", "BINARY[1]"...) whose value is size
// octets read from body, as a literal (literal8 when lit8, for BINARY
// data with NUL octets). A nil body writes NIL.
func (w *FetchWriter) Section(name string, size int64, body io.Reader, lit8 bool) error {
	w.item(name)
	w.e.sp()
	if body == nil {
		w.e.nil_()
		return w.e.err
	}
	w.e.literalHeader(size, lit8)
	if w.e.err != nil {
		return w.e.err
	}
	n, err := io.CopyN(w.e.w, body, size)
	if err != nil {
		// The literal's length is promised: the stream is broken.
		w.e.err = fmt.Errorf("write %s: %d of %d octets: %w", name, n, size, err)
	}
	return w.e.err
}
