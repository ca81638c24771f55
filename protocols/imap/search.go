package imap

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	nettextproto "net/textproto"
	"slices"
	"strings"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode non-UTF-8 text for SEARCH
	"github.com/emersion/go-message/textproto"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/imap/sortthread"
	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// searchFolder evaluates c over f's view and returns ascending indexes
// into f.Messages(). res is the SEARCHRES "$" set (UIDs). An error is an
// *imap.Error to answer (e.g. NO [BADCHARSET (US-ASCII UTF-8)]) or a store
// error.
//
// Criteria the index answers (sequence numbers, UIDs, flags, \Recent,
// sizes, internal dates, MODSEQ) are decided first and never open a file;
// a message file is opened only while a header or text criterion is still
// undecided for it, once, and read only as far as the criteria need: the
// header for header keys, the whole message for BODY and TEXT.
func searchFolder(ctx context.Context, f *store.Folder, charset string, c *goimap.SearchCriteria, res goimap.UIDSet) ([]int, error) {
	conv, err := searchCharset(charset)
	if err != nil {
		return nil, err
	}
	msgs := f.Messages()
	ev := &searcher{ctx: ctx, f: f, msgs: msgs, flagBits: map[string]store.Flags{}}
	for i := 0; i < 32; i++ {
		if names := f.FlagNames(store.Flags(1) << i); len(names) == 1 {
			ev.flagBits[strings.ToLower(names[0])] = store.Flags(1) << i
		}
	}
	root, err := ev.compile(c, res, conv)
	if err != nil {
		return nil, err
	}
	out := []int{}
	for i := range msgs {
		if i&1023 == 1023 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		ev.cur = loaded{idx: i, m: &msgs[i]}
		ok := ev.match(root)
		ev.cur.close()
		if ev.err != nil {
			return nil, ev.err
		}
		if ok {
			out = append(out, i)
		}
	}
	return out, nil
}

// errBadCharset names the charsets every client can use; the usual 8-bit
// ones work too (RFC 3501 lets the list be partial). The code carries its
// argument, as the encoder writes codes.
var errBadCharset = &goimap.Error{
	Type: goimap.StatusResponseTypeNo,
	Code: goimap.ResponseCodeBadCharset + " (US-ASCII UTF-8)",
	Text: "Unknown charset",
}

// searchCharset returns how to turn the criteria's strings into UTF-8:
// nil for US-ASCII and UTF-8, else a converter for a charset go-message
// knows; an unknown one is NO [BADCHARSET].
func searchCharset(charset string) (func(string) (string, error), error) {
	switch strings.ToUpper(charset) {
	case "", "US-ASCII", "UTF-8":
		return nil, nil
	}
	if _, err := gomessage.CharsetReader(charset, strings.NewReader("")); err != nil {
		return nil, errBadCharset
	}
	return func(s string) (string, error) {
		r, err := gomessage.CharsetReader(charset, strings.NewReader(s))
		if err != nil {
			return "", errBadCharset
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return "", bad("Search string not valid in charset " + charset)
		}
		return string(b), nil
	}, nil
}

// level is how much of a message a criterion needs.
type level uint8

const (
	levelIndex level = iota
	levelHeader
	levelBody
)

// span is an inclusive range of sequence numbers or UIDs; spans are
// sorted and merged, so that membership is a binary search however many
// ranges a client sends.
type span struct{ lo, hi uint32 }

type spans []span

func (s spans) has(v uint32) bool {
	i, _ := slices.BinarySearchFunc(s, v, func(sp span, v uint32) int {
		switch {
		case sp.hi < v:
			return -1
		case sp.lo > v:
			return 1
		}
		return 0
	})
	return i < len(s) && s[i].lo <= v && v <= s[i].hi
}

func mergeSpans(s spans) spans {
	slices.SortFunc(s, func(a, b span) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	out := s[:0]
	for _, sp := range s {
		if n := len(out); n > 0 && uint64(sp.lo) <= uint64(out[n-1].hi)+1 {
			out[n-1].hi = max(out[n-1].hi, sp.hi)
			continue
		}
		out = append(out, sp)
	}
	return out
}

// headerTest is one HEADER, FROM, TO, CC, BCC or SUBJECT key.
type headerTest struct {
	key    string // canonical field name
	needle string // folded; "" tests that the field exists
	kind   headerKind
}

type headerKind uint8

const (
	headerPlain   headerKind = iota
	headerAddress            // compared as Dovecot rewrites addresses
	headerSubject            // white space runs compressed
)

// node is a compiled search key list: every test must hold.
type node struct {
	seqs, uids   []spans
	need, forbid store.Flags
	never        bool // a keyword the folder does not have is required
	recent       int8 // 1: must be \Recent, -1: must not be
	larger       int64
	smaller      int64 // 0: none
	since        time.Time
	before       time.Time
	modseq       uint64

	sentSince, sentBefore time.Time
	headers               []headerTest
	body, text            []string // folded

	subs  []sub // NOT and OR, cheapest first
	level level // the most any test here or below needs
}

// sub is a NOT (not set) or an OR (both set).
type sub struct {
	not   *node
	or    [2]*node
	level level
}

// compile turns criteria into nodes: sets fixed against the view ("*" is
// the last message, "$" the saved result), flags turned into store bits,
// strings converted to UTF-8 and folded.
func (ev *searcher) compile(c *goimap.SearchCriteria, res goimap.UIDSet, conv func(string) (string, error)) (*node, error) {
	n := &node{}
	utf8 := func(s string) (string, error) {
		if conv == nil {
			return s, nil
		}
		return conv(s)
	}
	count := uint32(len(ev.msgs))
	var maxUID uint32
	if count > 0 {
		maxUID = ev.msgs[count-1].UID
	}
	for _, set := range c.SeqNum {
		var sp spans
		for _, r := range set {
			lo, hi := r.Start, r.Stop
			if lo == 0 {
				lo = count
			}
			if hi == 0 {
				hi = count
			}
			if lo > hi {
				lo, hi = hi, lo
			}
			if lo == 0 {
				lo = 1
			}
			if lo <= hi {
				sp = append(sp, span{lo, hi})
			}
		}
		n.seqs = append(n.seqs, mergeSpans(sp))
	}
	for _, set := range c.UID {
		if goimap.IsSearchRes(set) {
			set = res
		}
		var sp spans
		for _, r := range set {
			lo, hi := uint32(r.Start), uint32(r.Stop)
			if lo == 0 {
				lo = maxUID
			}
			if hi == 0 {
				hi = maxUID
			}
			if lo > hi {
				lo, hi = hi, lo
			}
			if hi > 0 {
				sp = append(sp, span{max(lo, 1), hi})
			}
		}
		n.uids = append(n.uids, mergeSpans(sp))
	}
	for _, fl := range c.Flag {
		if fl == wire.FlagRecent {
			if n.recent < 0 {
				n.never = true
			}
			n.recent = 1
			continue
		}
		bit, ok := ev.flagBits[strings.ToLower(string(fl))]
		if !ok {
			n.never = true
		}
		n.need |= bit
	}
	for _, fl := range c.NotFlag {
		if fl == wire.FlagRecent {
			if n.recent > 0 {
				n.never = true
			}
			n.recent = -1
			continue
		}
		n.forbid |= ev.flagBits[strings.ToLower(string(fl))]
	}
	if n.need&n.forbid != 0 {
		n.never = true
	}
	n.larger, n.smaller = c.Larger, c.Smaller
	n.since, n.before = dayOf(c.Since), dayOf(c.Before)
	n.sentSince, n.sentBefore = dayOf(c.SentSince), dayOf(c.SentBefore)
	if c.ModSeq != nil {
		n.modseq = c.ModSeq.ModSeq
	}
	for _, h := range c.Header {
		v, err := utf8(h.Value)
		if err != nil {
			return nil, err
		}
		t := headerTest{key: nettextproto.CanonicalMIMEHeaderKey(h.Key), needle: sortthread.Fold(v)}
		switch t.key {
		case "From", "To", "Cc", "Bcc":
			t.kind = headerAddress
		case "Subject":
			t.kind = headerSubject
			t.needle = compressSpace(t.needle)
		}
		n.headers = append(n.headers, t)
		n.level = max(n.level, levelHeader)
	}
	if !n.sentSince.IsZero() || !n.sentBefore.IsZero() {
		n.level = max(n.level, levelHeader)
	}
	for _, b := range c.Body {
		v, err := utf8(b)
		if err != nil {
			return nil, err
		}
		n.body = append(n.body, sortthread.Fold(v))
		n.level = levelBody
	}
	for _, t := range c.Text {
		v, err := utf8(t)
		if err != nil {
			return nil, err
		}
		n.text = append(n.text, sortthread.Fold(v))
		n.level = levelBody
	}
	for i := range c.Not {
		k, err := ev.compile(&c.Not[i], res, conv)
		if err != nil {
			return nil, err
		}
		n.subs = append(n.subs, sub{not: k, level: k.level})
	}
	for i := range c.Or {
		a, err := ev.compile(&c.Or[i][0], res, conv)
		if err != nil {
			return nil, err
		}
		b, err := ev.compile(&c.Or[i][1], res, conv)
		if err != nil {
			return nil, err
		}
		if b.level < a.level {
			a, b = b, a // the cheaper side first: OR's answer is the same
		}
		n.subs = append(n.subs, sub{or: [2]*node{a, b}, level: b.level})
	}
	slices.SortStableFunc(n.subs, func(a, b sub) int { return int(a.level) - int(b.level) })
	for _, s := range n.subs {
		n.level = max(n.level, s.level)
	}
	return n, nil
}

func dayOf(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// loaded is the message being evaluated, with what was read of it so far.
type loaded struct {
	idx int
	m   *store.Message

	r      *store.MessageReader
	br     *bufio.Reader
	gone   bool // the file vanished: nothing about its content matches
	header *textproto.Header
	text   *string // folded header block, for TEXT
	body   *string // folded decoded text parts
}

func (l *loaded) close() {
	if l.r != nil {
		l.r.Close()
		l.r = nil
	}
}

type searcher struct {
	ctx      context.Context
	f        *store.Folder
	msgs     []store.Message
	flagBits map[string]store.Flags
	cur      loaded
	err      error // a store error: the search fails
}

// match evaluates n for the current message: the index's tests, then the
// subs the index decides, then header tests and subs, then text.
func (ev *searcher) match(n *node) bool {
	if !ev.indexTests(n) {
		return false
	}
	i := 0
	for lv := levelIndex; lv <= levelBody; lv++ {
		switch lv {
		case levelHeader:
			if !ev.headerTests(n) {
				return false
			}
		case levelBody:
			if !ev.bodyTests(n) {
				return false
			}
		}
		for ; i < len(n.subs) && n.subs[i].level == lv; i++ {
			s := &n.subs[i]
			if s.not != nil {
				if ev.match(s.not) {
					return false
				}
			} else if !ev.match(s.or[0]) && !ev.match(s.or[1]) {
				return false
			}
			if ev.err != nil {
				return false
			}
		}
	}
	return true
}

func (ev *searcher) indexTests(n *node) bool {
	m := ev.cur.m
	if n.never || m.Flags&n.need != n.need || m.Flags&n.forbid != 0 {
		return false
	}
	seq := uint32(ev.cur.idx + 1)
	for _, s := range n.seqs {
		if !s.has(seq) {
			return false
		}
	}
	for _, s := range n.uids {
		if !s.has(m.UID) {
			return false
		}
	}
	if n.recent != 0 && ev.f.IsRecent(m.UID) != (n.recent > 0) {
		return false
	}
	if n.larger > 0 && m.Size <= n.larger {
		return false
	}
	if n.smaller > 0 && m.Size >= n.smaller {
		return false
	}
	if n.modseq > 0 && m.ModSeq < n.modseq {
		return false
	}
	if !n.since.IsZero() || !n.before.IsZero() {
		day := dayOf(m.InternalDate.In(time.Local))
		if !n.since.IsZero() && day.Before(n.since) {
			return false
		}
		if !n.before.IsZero() && !day.Before(n.before) {
			return false
		}
	}
	return true
}

func (ev *searcher) headerTests(n *node) bool {
	if n.sentSince.IsZero() && n.sentBefore.IsZero() && len(n.headers) == 0 {
		return true
	}
	h := ev.loadHeader()
	if h == nil {
		return false
	}
	if !n.sentSince.IsZero() || !n.sentBefore.IsZero() {
		day := sortthread.SentDay(h.Get("Date"))
		if !n.sentSince.IsZero() && day.Before(n.sentSince) {
			return false
		}
		if !n.sentBefore.IsZero() && !day.Before(n.sentBefore) {
			return false
		}
	}
	for i := range n.headers {
		if !headerMatch(h, &n.headers[i]) {
			return false
		}
	}
	return true
}

func headerMatch(h *textproto.Header, t *headerTest) bool {
	for f := h.FieldsByKey(t.key); f.Next(); {
		if t.needle == "" {
			return true
		}
		v := joinFolded(f.Value())
		var hay string
		switch t.kind {
		case headerAddress:
			hay = sortthread.Fold(sortthread.AddressText(v))
		case headerSubject:
			hay = compressSpace(sortthread.Fold(sortthread.DecodeHeader(v)))
		default:
			hay = sortthread.Fold(sortthread.DecodeHeader(v))
		}
		if strings.Contains(hay, t.needle) {
			return true
		}
	}
	return false
}

func (ev *searcher) bodyTests(n *node) bool {
	if len(n.body) == 0 && len(n.text) == 0 {
		return true
	}
	body := ev.loadBody()
	if body == nil {
		return false
	}
	for _, b := range n.body {
		if !strings.Contains(*body, b) {
			return false
		}
	}
	for _, t := range n.text {
		if !strings.Contains(*body, t) && !strings.Contains(ev.headerText(), t) {
			return false
		}
	}
	return true
}

// joinFolded joins a folded header value's lines.
func joinFolded(v string) string {
	if !strings.ContainsAny(v, "\r\n") {
		return v
	}
	return strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(v)
}

// compressSpace turns runs of white space into one space, as Dovecot
// compares SUBJECT.
func compressSpace(s string) string {
	if !strings.Contains(s, "  ") && !strings.ContainsAny(s, "\t\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// maxSearchBody bounds what SEARCH reads of one message, header included.
const maxSearchBody = 16 << 20

// open opens the current message's file once; a message expunged by
// another process meanwhile has no content to match.
func (ev *searcher) open() bool {
	c := &ev.cur
	if c.r != nil {
		return true
	}
	if c.gone {
		return false
	}
	r, err := ev.f.Open(ev.ctx, c.m.UID)
	if err != nil {
		c.gone = true
		if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, fs.ErrNotExist) {
			ev.err = err
		}
		return false
	}
	c.r = r
	c.br = bufio.NewReader(io.LimitReader(r, maxSearchBody))
	return true
}

// loadHeader reads the current message's header, and nothing after it.
func (ev *searcher) loadHeader() *textproto.Header {
	c := &ev.cur
	if c.header != nil {
		return c.header
	}
	if !ev.open() {
		return nil
	}
	h, _ := textproto.ReadHeader(c.br)
	c.header = &h
	return c.header
}

// headerText is the whole header, decoded and folded, for TEXT.
func (ev *searcher) headerText() string {
	c := &ev.cur
	if c.text != nil {
		return *c.text
	}
	var b strings.Builder
	if h := ev.loadHeader(); h != nil {
		for f := h.Fields(); f.Next(); {
			b.WriteString(f.Key())
			b.WriteString(": ")
			b.WriteString(sortthread.DecodeHeader(joinFolded(f.Value())))
			b.WriteByte('\n')
		}
	}
	s := sortthread.Fold(b.String())
	c.text = &s
	return s
}

// loadBody reads the rest of the message and keeps the text of its text
// parts with transfer encodings and charsets decoded, folded, so that a
// search for "Grüße" finds it in a quoted-printable ISO-8859-1 part.
func (ev *searcher) loadBody() *string {
	c := &ev.cur
	if c.body != nil {
		return c.body
	}
	h := ev.loadHeader()
	if h == nil {
		return nil
	}
	var text strings.Builder
	// An unknown charset or transfer encoding still yields the entity,
	// searched as it is.
	ent, _ := gomessage.New(gomessage.Header{Header: *h}, c.br)
	if ent == nil {
		// Unparseable: search the raw text after the header.
		rest, _ := io.ReadAll(c.br)
		text.Write(rest)
	} else {
		_ = ent.Walk(func(_ []int, e *gomessage.Entity, err error) error {
			if e == nil || e.MultipartReader() != nil {
				return nil
			}
			t, _, _ := e.Header.ContentType()
			if t != "" && !strings.HasPrefix(t, "text/") && !strings.HasPrefix(t, "message/") {
				return nil
			}
			b, _ := io.ReadAll(e.Body)
			text.Write(b)
			text.WriteByte('\n')
			return nil
		})
	}
	if err := ev.ctx.Err(); err != nil && ev.err == nil {
		ev.err = err
	}
	s := sortthread.Fold(strings.ToValidUTF8(text.String(), "\uFFFD"))
	c.body = &s
	return c.body
}
