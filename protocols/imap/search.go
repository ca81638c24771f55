package imap

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"strings"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode non-UTF-8 text for SEARCH
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/vmaild/vmaild/backend/store"
)

// Search evaluates criteria against the view. Sequence numbers, UIDs,
// flags, internal dates and sizes come from the index; a message file is
// read only when a criterion about its header or text is still undecided
// for it, and then once.
func (s *session) Search(kind imapserver.NumKind, criteria *goimap.SearchCriteria, options *goimap.SearchOptions) (*goimap.SearchData, error) {
	sel, err := s.selected()
	if err != nil {
		return nil, err
	}
	msgs := sel.folder.Messages()
	ev := &searcher{s: s, sel: sel, flagBits: map[string]store.Flags{}}
	for i := 0; i < 32; i++ {
		if names := sel.folder.FlagNames(store.Flags(1) << i); len(names) == 1 {
			ev.flagBits[strings.ToLower(names[0])] = store.Flags(1) << i
		}
	}
	if err := ev.prepare(criteria); err != nil {
		return nil, err
	}
	var data goimap.SearchData
	var seqs goimap.SeqSet
	var uids goimap.UIDSet
	for i := range msgs {
		ev.cur = message{seq: uint32(i + 1), m: &msgs[i]}
		if !ev.match(criteria) {
			continue
		}
		uids.AddNum(goimap.UID(msgs[i].UID))
		num := uint32(i + 1)
		if kind == imapserver.NumKindUID {
			num = msgs[i].UID
		} else {
			seqs.AddNum(num)
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		data.Max = max(data.Max, num)
		data.Count++
	}
	if ev.err != nil {
		return nil, s.storeError("search", ev.err)
	}
	if kind == imapserver.NumKindUID {
		data.All = uids
	} else {
		data.All = seqs
	}
	if options != nil && options.ReturnSave {
		sel.searchRes = uids
	}
	return &data, nil
}

type message struct {
	seq    uint32
	m      *store.Message
	loaded bool
	header textproto.Header
	text   string // decoded body text, lower case
	raw    []byte
}

type searcher struct {
	s        *session
	sel      *selection
	flagBits map[string]store.Flags
	cur      message
	err      error
}

// prepare fixes dynamic sets ("*", "$") against the view and rejects what
// cannot be answered.
func (ev *searcher) prepare(c *goimap.SearchCriteria) error {
	if c.ModSeq != nil {
		return bad("CONDSTORE is not supported")
	}
	for i, set := range c.SeqNum {
		idx, err := ev.sel.resolve(set)
		if err != nil {
			return err
		}
		var fixed goimap.SeqSet
		for _, j := range idx {
			fixed.AddNum(uint32(j + 1))
		}
		c.SeqNum[i] = fixed
	}
	for i, set := range c.UID {
		var fixed goimap.UIDSet
		idx, err := ev.sel.resolve(set)
		if err != nil {
			return err
		}
		for _, u := range ev.sel.uids(idx) {
			fixed.AddNum(goimap.UID(u))
		}
		c.UID[i] = fixed
	}
	for i := range c.Not {
		if err := ev.prepare(&c.Not[i]); err != nil {
			return err
		}
	}
	for i := range c.Or {
		for j := range c.Or[i] {
			if err := ev.prepare(&c.Or[i][j]); err != nil {
				return err
			}
		}
	}
	return nil
}

func dayOf(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// match checks the index-only criteria first, then the file-based ones.
func (ev *searcher) match(c *goimap.SearchCriteria) bool {
	m := ev.cur.m
	for _, set := range c.SeqNum {
		if !set.Contains(ev.cur.seq) {
			return false
		}
	}
	for _, set := range c.UID {
		if !set.Contains(goimap.UID(m.UID)) {
			return false
		}
	}
	for _, f := range c.Flag {
		if !ev.hasFlag(f) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if ev.hasFlag(f) {
			return false
		}
	}
	if c.Larger > 0 && m.Size <= c.Larger {
		return false
	}
	if c.Smaller > 0 && m.Size >= c.Smaller {
		return false
	}
	if !c.Since.IsZero() || !c.Before.IsZero() {
		day := dayOf(m.InternalDate.In(time.Local))
		if !c.Since.IsZero() && day.Before(dayOf(c.Since)) {
			return false
		}
		if !c.Before.IsZero() && !day.Before(dayOf(c.Before)) {
			return false
		}
	}
	for i := range c.Not {
		if ev.match(&c.Not[i]) {
			return false
		}
	}
	for _, or := range c.Or {
		if !ev.match(&or[0]) && !ev.match(&or[1]) {
			return false
		}
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		if !ev.load() {
			return false
		}
		mh := mail.Header{Header: gomessage.Header{Header: ev.cur.header}}
		date, err := mh.Date()
		if err != nil {
			return false
		}
		day := dayOf(date)
		if !c.SentSince.IsZero() && day.Before(dayOf(c.SentSince)) {
			return false
		}
		if !c.SentBefore.IsZero() && !day.Before(dayOf(c.SentBefore)) {
			return false
		}
	}
	for _, h := range c.Header {
		if !ev.load() || !ev.headerMatch(h.Key, h.Value) {
			return false
		}
	}
	for _, b := range c.Body {
		if !ev.load() || !strings.Contains(ev.cur.text, strings.ToLower(b)) {
			return false
		}
	}
	for _, t := range c.Text {
		if !ev.load() {
			return false
		}
		needle := strings.ToLower(t)
		if !strings.Contains(ev.cur.text, needle) && !ev.headerContains(needle) {
			return false
		}
	}
	return true
}

func (ev *searcher) hasFlag(f goimap.Flag) bool {
	bit, ok := ev.flagBits[strings.ToLower(string(f))]
	return ok && ev.cur.m.Flags.Has(bit)
}

var wordDecoder = mime.WordDecoder{CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
	return gomessage.CharsetReader(charset, input)
}}

func decodeHeader(v string) string {
	if d, err := wordDecoder.DecodeHeader(v); err == nil {
		return d
	}
	return v
}

func (ev *searcher) headerMatch(key, value string) bool {
	needle := strings.ToLower(value)
	for f := ev.cur.header.FieldsByKey(key); f.Next(); {
		if needle == "" || strings.Contains(strings.ToLower(decodeHeader(f.Value())), needle) {
			return true
		}
	}
	return false
}

func (ev *searcher) headerContains(needle string) bool {
	for f := ev.cur.header.Fields(); f.Next(); {
		if strings.Contains(strings.ToLower(decodeHeader(f.Value())), needle) {
			return true
		}
	}
	return false
}

// maxSearchBody bounds how much of one message SEARCH BODY/TEXT reads.
const maxSearchBody = 16 << 20

// load reads the current message once: its header, and its text with
// transfer encodings and charsets decoded, so that a search for "Grüße"
// finds it in a quoted-printable ISO-8859-1 part.
func (ev *searcher) load() bool {
	c := &ev.cur
	if c.loaded {
		return c.raw != nil
	}
	c.loaded = true
	r, err := ev.sel.folder.Open(ev.s.ctx, c.m.UID)
	if err != nil {
		if ev.err == nil && ev.s.ctx.Err() != nil {
			ev.err = err
		}
		return false
	}
	defer r.Close()
	raw, err := io.ReadAll(io.LimitReader(r, maxSearchBody))
	if err != nil {
		return false
	}
	c.raw = raw
	br := bufio.NewReader(bytes.NewReader(raw))
	c.header, _ = textproto.ReadHeader(br)
	var text strings.Builder
	ent, err := gomessage.Read(bytes.NewReader(raw))
	if ent == nil {
		// Unparseable: search the raw text after the header.
		rest, _ := io.ReadAll(br)
		c.text = strings.ToLower(string(rest))
		return true
	}
	ent.Walk(func(path []int, e *gomessage.Entity, err error) error {
		if err != nil || e.MultipartReader() != nil {
			return nil
		}
		t, _, _ := e.Header.ContentType()
		if t != "" && !strings.HasPrefix(t, "text/") && !strings.HasPrefix(t, "message/") {
			return nil
		}
		b, _ := io.ReadAll(io.LimitReader(e.Body, maxSearchBody))
		text.Write(b)
		text.WriteByte('\n')
		return nil
	})
	c.text = strings.ToLower(text.String())
	return true
}
