package imap

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"sync"

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

type sortCacheFolder struct {
	msgs    map[uint32]*sortFields
	bytes   int64
	lastUse uint64
}

// sortFields are the raw header values of a sortthread.Message.
type sortFields struct {
	date, subject, from, to, cc, messageID, references, inReplyTo string
}

func (s *sortFields) size() int64 {
	return int64(len(s.date)+len(s.subject)+len(s.from)+len(s.to)+len(s.cc)+
		len(s.messageID)+len(s.references)+len(s.inReplyTo)) + sortEntryOverhead
}

func (s *sortFields) copyTo(m *sortthread.Message) {
	m.Date, m.Subject, m.From, m.To, m.Cc = s.date, s.subject, s.from, s.to, s.cc
	m.MessageID, m.References, m.InReplyTo = s.messageID, s.references, s.inReplyTo
}

// newSortCache makes a cache of at most maxBytes; 0 means
// DefaultSortCacheBytes.
func newSortCache(maxBytes int64) *sortCache {
	if maxBytes <= 0 {
		maxBytes = DefaultSortCacheBytes
	}
	return &sortCache{maxBytes: maxBytes, folders: map[sortFolderKey]*sortCacheFolder{}}
}

// fill sets the header fields of msgs (their UIDs set, messages of f)
// from the cache, reading the headers it lacks. A nil cache reads them
// all. A message expunged meanwhile keeps empty fields.
func (c *sortCache) fill(ctx context.Context, f *store.Folder, msgs []sortthread.Message) error {
	key := sortFolderKey{f.Dir(), f.UIDValidity()}
	missing := make([]int, 0, 64)
	if c == nil {
		for i := range msgs {
			missing = append(missing, i)
		}
	} else {
		c.mu.Lock()
		c.clock++
		cf := c.folders[key]
		if cf != nil {
			cf.lastUse = c.clock
		}
		for i := range msgs {
			if cf != nil {
				if e := cf.msgs[msgs[i].UID]; e != nil {
					e.copyTo(&msgs[i])
					continue
				}
			}
			missing = append(missing, i)
		}
		c.mu.Unlock()
	}
	if len(missing) == 0 {
		return nil
	}
	read, err := readAllSortFields(ctx, f, msgs, missing)
	if err != nil {
		return err
	}
	for k, e := range read {
		if e != nil {
			e.copyTo(&msgs[missing[k]])
		}
	}
	if c != nil {
		c.add(key, msgs, missing, read)
	}
	return nil
}

// add stores read[k], the fields of msgs[missing[k]], within the budget.
func (c *sortCache) add(key sortFolderKey, msgs []sortthread.Message, missing []int, read []*sortFields) {
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
		cf = &sortCacheFolder{msgs: make(map[uint32]*sortFields, len(read))}
		c.folders[key] = cf
	}
	cf.lastUse = c.clock
	for k, e := range read {
		if e == nil {
			continue
		}
		uid := msgs[missing[k]].UID
		if cf.msgs[uid] != nil {
			continue // another session read it meanwhile
		}
		sz := e.size()
		if c.used+sz > c.maxBytes {
			break
		}
		cf.msgs[uid] = e
		cf.bytes += sz
		c.used += sz
	}
}

// readAllSortFields reads the headers of msgs[missing[k]] into the k-th
// result (nil for a message that is gone). One file at a time: a Folder
// is one goroutine's, and on a busy machine reading in parallel gained
// nothing measurable.
func readAllSortFields(ctx context.Context, f *store.Folder, msgs []sortthread.Message, missing []int) ([]*sortFields, error) {
	read := make([]*sortFields, len(missing))
	br := bufio.NewReaderSize(nil, 4096)
	for k, i := range missing {
		if k&255 == 255 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		var err error
		if read[k], err = readSortFields(ctx, f, msgs[i].UID, br); err != nil {
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
	return &sortFields{
		date:       cutField(h.Get("Date")),
		subject:    cutField(h.Get("Subject")),
		from:       cutField(h.Get("From")),
		to:         cutField(h.Get("To")),
		cc:         cutField(h.Get("Cc")),
		messageID:  cutField(h.Get("Message-Id")),
		references: cutRefs(h.Get("References")),
		inReplyTo:  cutField(h.Get("In-Reply-To")),
	}, nil
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
