package imap

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"io"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-message/textproto"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/imap/sortthread"
)

// DefaultSortCacheBytes bounds a sortCache made with size 0: about 120,000
// messages of ordinary headers.
const DefaultSortCacheBytes = 64 << 20

// Each header field SORT and THREAD read is cut, the same way whether it
// comes from the file or the cache, so that one message cannot take the
// cache: References keeps its last maxSortRefs octets (the parent and
// nearest ancestors), the others their first maxSortField.
const (
	maxSortField = 4 << 10
	maxSortRefs  = 16 << 10
	// sortEntryOverhead is what an entry costs besides its strings: the
	// map slot, the struct and its string headers.
	sortEntryOverhead = 200
	// maxSortHeader bounds how much of a message is read for its header.
	maxSortHeader = 1 << 20
)

// sortCache keeps the header fields SORT and THREAD need (Date, Subject,
// From, To, Cc, Message-ID, References, In-Reply-To) per message, so that
// sorting or threading a big folder again opens no file. One sortCache
// serves every session of a process (the Server owns it); it is safe for
// concurrent use.
//
// Messages never change, so an entry stays true as long as its key
// (folder directory, UIDVALIDITY, UID) names a message, and an expunged
// message's entry is merely dead weight until its folder is dropped.
//
// Bound: the fields' octets plus sortEntryOverhead per entry, over all
// folders, stay under maxBytes. When a folder's new entries do not fit,
// the least recently used other folders are dropped whole (a sort needs a
// folder's every message, so a half-cached folder is worth little); a
// folder larger than the whole budget is cached up to it and the rest is
// read from the files each time.
type sortCache struct {
	maxBytes int64

	mu      sync.Mutex
	used    int64
	clock   uint64
	folders map[sortFolderKey]*sortCacheFolder
}

type sortFolderKey struct {
	dir      string
	validity uint32
}

// sortCacheFolder is one folder's entries by ascending UID: the UIDs a
// SORT or THREAD asks for ascend too, so finding them is a walk along
// uids rather than a hash lookup each.
type sortCacheFolder struct {
	uids    []uint32
	ents    []*sortFields // ents[i] is uids[i]'s
	bytes   int64
	lastUse uint64
}

// find is the entry of uid, or nil. *from is where the previous find
// stopped: the search starts there when uid is not below it, stepping a
// few entries before it searches the rest.
func (cf *sortCacheFolder) find(uid uint32, from *int) *sortFields {
	u := cf.uids
	i := *from
	if i >= len(u) || u[i] > uid {
		i = 0
	}
	for n := 0; n < 8 && i < len(u) && u[i] < uid; n++ {
		i++
	}
	if i < len(u) && u[i] < uid {
		i += sort.Search(len(u)-i, func(k int) bool { return u[i+k] >= uid })
	}
	*from = i
	if i < len(u) && u[i] == uid {
		return cf.ents[i]
	}
	return nil
}

// insert adds entries for uids that have none, ascending; the common case,
// UIDs above every cached one, appends.
func (cf *sortCacheFolder) insert(uids []uint32, ents []*sortFields) {
	if len(cf.uids) == 0 || uids[0] > cf.uids[len(cf.uids)-1] {
		cf.uids = append(cf.uids, uids...)
		cf.ents = append(cf.ents, ents...)
		return
	}
	n := len(cf.uids) + len(uids)
	mu, me := make([]uint32, 0, n), make([]*sortFields, 0, n)
	i, j := 0, 0
	for i < len(cf.uids) || j < len(uids) {
		if j == len(uids) || (i < len(cf.uids) && cf.uids[i] < uids[j]) {
			mu, me = append(mu, cf.uids[i]), append(me, cf.ents[i])
			i++
		} else {
			mu, me = append(mu, uids[j]), append(me, ents[j])
			j++
		}
	}
	cf.uids, cf.ents = mu, me
}

// sortFields are the raw header values of a sortthread.Message, the
// sent date of its Date field, parsed once (sortthread.HeaderSentDate),
// and the string sort keys (sortthread.StringKey) made from them at
// their first SORT. The fields never change once the entry is made, and
// a key is set atomically, so an entry is read without the lock.
type sortFields struct {
	date, subject, from, to, cc, messageID, references, inReplyTo string
	sentDate                                                      int64
	keys                                                          [sortthread.DisplayTo + 1]atomic.Pointer[string]
}

// stringKey is sortthread.StringKey of the entry's message, made once.
func (s *sortFields) stringKey(k sortthread.Key) string {
	if p := s.keys[k].Load(); p != nil {
		return *p
	}
	var m sortthread.Message
	s.copyTo(&m)
	v := sortthread.StringKey(&m, k)
	s.keys[k].Store(&v)
	return v
}

// size is what the entry may come to cost: its fields, once more the
// fields its string keys are made of (a key is a part of its field,
// folded: FROM and DISPLAYFROM of From, TO and DISPLAYTO of To), and
// sortEntryOverhead.
func (s *sortFields) size() int64 {
	keys := len(s.subject) + 2*len(s.from) + 2*len(s.to) + len(s.cc)
	return int64(len(s.date)+len(s.subject)+len(s.from)+len(s.to)+len(s.cc)+
		len(s.messageID)+len(s.references)+len(s.inReplyTo)+keys) + sortEntryOverhead
}

func (s *sortFields) copyTo(m *sortthread.Message) {
	m.Date, m.Subject, m.From, m.To, m.Cc = s.date, s.subject, s.from, s.to, s.cc
	m.MessageID, m.References, m.InReplyTo = s.messageID, s.references, s.inReplyTo
	m.HeaderDate, m.DateParsed = s.sentDate, true
}

// newSortCache makes a cache of at most maxBytes; 0 means
// DefaultSortCacheBytes.
func newSortCache(maxBytes int64) *sortCache {
	if maxBytes <= 0 {
		maxBytes = DefaultSortCacheBytes
	}
	return &sortCache{maxBytes: maxBytes, folders: map[sortFolderKey]*sortCacheFolder{}}
}

// fill sets the header fields of msgs, the messages idx of f (see
// lookup).
func (c *sortCache) fill(ctx context.Context, f *store.Folder, idx []int, msgs []sortthread.Message) error {
	ents, err := c.lookup(ctx, f, idx)
	if err != nil {
		return err
	}
	for i, e := range ents {
		e.copyTo(&msgs[i])
	}
	return nil
}

// lookup is the header fields of the messages idx (indexes into
// f.Messages()) from the cache, reading the headers it lacks; a nil cache
// reads them all. A message expunged meanwhile has empty fields.
func (c *sortCache) lookup(ctx context.Context, f *store.Folder, idx []int) ([]*sortFields, error) {
	all := f.Messages()
	key := sortFolderKey{f.Dir(), f.UIDValidity()}
	ents := make([]*sortFields, len(idx))
	var missing []int // positions in idx
	if c == nil {
		missing = make([]int, len(idx))
		for i := range idx {
			missing[i] = i
		}
	} else {
		c.mu.Lock()
		c.clock++
		cf := c.folders[key]
		if cf != nil {
			cf.lastUse = c.clock
			p := 0
			for i, j := range idx {
				ents[i] = cf.find(all[j].UID, &p)
			}
		}
		c.mu.Unlock()
		for i, e := range ents {
			if e == nil {
				missing = append(missing, i)
			}
		}
	}
	if len(missing) == 0 {
		return ents, nil
	}
	uids := make([]uint32, len(missing))
	for k, i := range missing {
		uids[k] = all[idx[i]].UID
	}
	read, err := readAllSortFields(ctx, f, uids)
	if err != nil {
		return nil, err
	}
	for k, e := range read {
		if e == nil {
			e = &sortFields{} // expunged before its header was read
		}
		ents[missing[k]] = e
	}
	if c != nil {
		c.add(key, uids, read)
	}
	return ents, nil
}

// add stores read[k], the fields of the message uids[k], within the
// budget.
func (c *sortCache) add(key sortFolderKey, uids []uint32, read []*sortFields) {
	var need int64
	for _, e := range read {
		if e != nil {
			need += e.size()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.used+need > c.maxBytes {
		var victim sortFolderKey
		var oldest *sortCacheFolder
		for k, cf := range c.folders {
			if k != key && (oldest == nil || cf.lastUse < oldest.lastUse) {
				victim, oldest = k, cf
			}
		}
		if oldest == nil {
			break
		}
		c.used -= oldest.bytes
		delete(c.folders, victim)
	}
	cf := c.folders[key]
	if cf == nil {
		cf = &sortCacheFolder{}
		c.folders[key] = cf
	}
	cf.lastUse = c.clock
	// The new entries by ascending UID (lookup asks in that order).
	order := make([]int, len(read))
	for k := range order {
		order[k] = k
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(uids[a], uids[b]) })
	newUIDs := make([]uint32, 0, len(read))
	newEnts := make([]*sortFields, 0, len(read))
	p := 0
	for _, k := range order {
		e := read[k]
		if e == nil || (len(newUIDs) > 0 && newUIDs[len(newUIDs)-1] == uids[k]) {
			continue
		}
		if cf.find(uids[k], &p) != nil {
			continue // another session read it meanwhile
		}
		sz := e.size()
		if c.used+sz > c.maxBytes {
			break
		}
		newUIDs, newEnts = append(newUIDs, uids[k]), append(newEnts, e)
		cf.bytes += sz
		c.used += sz
	}
	if len(newUIDs) > 0 {
		cf.insert(newUIDs, newEnts)
	}
}

// readAllSortFields reads the headers of the messages uids into the k-th
// result (nil for a message that is gone). One file at a time: a Folder
// is one goroutine's, and on a busy machine reading in parallel gained
// nothing measurable.
func readAllSortFields(ctx context.Context, f *store.Folder, uids []uint32) ([]*sortFields, error) {
	read := make([]*sortFields, len(uids))
	br := bufio.NewReaderSize(nil, 4096)
	for k, uid := range uids {
		if k&255 == 255 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		var err error
		if read[k], err = readSortFields(ctx, f, uid, br); err != nil {
			return nil, err
		}
	}
	return read, nil
}

// readSortFields reads one message's header; nil, nil when the message
// is gone.
func readSortFields(ctx context.Context, f *store.Folder, uid uint32, br *bufio.Reader) (*sortFields, error) {
	r, err := f.Open(ctx, uid)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer r.Close()
	br.Reset(io.LimitReader(r, maxSortHeader))
	// A malformed line ends the header; what came before it counts.
	h, _ := textproto.ReadHeader(br)
	e := &sortFields{
		date:       cutField(h.Get("Date")),
		subject:    cutField(h.Get("Subject")),
		from:       cutField(h.Get("From")),
		to:         cutField(h.Get("To")),
		cc:         cutField(h.Get("Cc")),
		messageID:  cutField(h.Get("Message-Id")),
		references: cutRefs(h.Get("References")),
		inReplyTo:  cutField(h.Get("In-Reply-To")),
	}
	e.sentDate = sortthread.HeaderSentDate(e.date)
	return e, nil
}

func cutField(s string) string {
	if len(s) > maxSortField {
		return strings.Clone(s[:maxSortField])
	}
	return s
}

// cutRefs keeps the last identifiers of a long References field, starting
// at a "<" so that no identifier is cut.
func cutRefs(s string) string {
	if len(s) <= maxSortRefs {
		return s
	}
	tail := s[len(s)-maxSortRefs:]
	if i := strings.IndexByte(tail, '<'); i >= 0 {
		tail = tail[i:]
	}
	return strings.Clone(tail)
}
