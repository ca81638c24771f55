package imap

import (
	"context"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/imap/sortthread"
	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// SORT and THREAD: the orderings are package sortthread's (Dovecot's, as
// its oracle test shows); this file feeds it the folder's messages, their
// index data and, from the sortCache, the header fields the keys need.

// sortFolder orders idx (ascending indexes, as searchFolder returns) by
// keys (RFC 5256 + RFC 5957 DISPLAYFROM/DISPLAYTO). ARRIVAL and SIZE
// come from the index alone; the other keys read headers through the
// cache (c may be nil: no cache). The keys go to sortthread as columns,
// built straight from the index and the cache entries.
func (c *sortCache) sortFolder(ctx context.Context, f *store.Folder, idx []int, keys []wire.SortCriterion) ([]int, error) {
	crit := make([]sortthread.Criterion, len(keys))
	headers := false
	for i, k := range keys {
		key, ok := sortthread.ParseKey(string(k.Key))
		if !ok {
			return nil, bad("Unknown sort key " + string(k.Key))
		}
		crit[i] = sortthread.Criterion{Key: key, Reverse: k.Reverse}
		headers = headers || (key != sortthread.Arrival && key != sortthread.Size)
	}
	var ents []*sortFields
	if headers {
		var err error
		if ents, err = c.lookup(ctx, f, idx); err != nil {
			return nil, err
		}
	}
	all := f.Messages()
	cols := make([]sortthread.Column, len(crit))
	for ci, cr := range crit {
		col := &cols[ci]
		col.Reverse = cr.Reverse
		switch cr.Key {
		case sortthread.Arrival, sortthread.Size, sortthread.Date:
			col.Num = make([]int64, len(idx))
			for i, j := range idx {
				m := &all[j]
				switch cr.Key {
				case sortthread.Arrival:
					col.Num[i] = m.InternalDate.Unix()
				case sortthread.Size:
					col.Num[i] = m.Size
				default:
					col.Num[i] = sortthread.SentDate(ents[i].sentDate, m.InternalDate)
				}
			}
		default:
			col.Str = make([]string, len(idx))
			for i := range idx {
				col.Str[i] = ents[i].stringKey(cr.Key)
			}
		}
	}
	order := sortthread.SortColumns(len(idx), cols)
	out := make([]int, len(order))
	for i, p := range order {
		out[i] = idx[p]
	}
	return out, nil
}

// threadFolder threads idx (ORDEREDSUBJECT, REFERENCES); node Num is the
// sequence number, or the UID when uid is set.
func (c *sortCache) threadFolder(ctx context.Context, f *store.Folder, idx []int, alg goimap.ThreadAlgorithm, uid bool) ([]wire.ThreadNode, error) {
	a, ok := sortthread.ParseAlgorithm(string(alg))
	if !ok {
		return nil, bad("Unknown thread algorithm " + string(alg))
	}
	msgs := indexMessages(f, idx)
	if err := c.fill(ctx, f, idx, msgs); err != nil {
		return nil, err
	}
	return threadNodes(sortthread.Thread(msgs, a), uid), nil
}

// indexMessages is idx as sortthread records with the index's data.
func indexMessages(f *store.Folder, idx []int) []sortthread.Message {
	all := f.Messages()
	msgs := make([]sortthread.Message, len(idx))
	for i, j := range idx {
		m := &all[j]
		msgs[i] = sortthread.Message{Seq: uint32(j + 1), UID: m.UID, InternalDate: m.InternalDate, Size: m.Size}
	}
	return msgs
}

// threadNodes turns sortthread's trees into the encoder's form: a chain of
// only children, then the branches of the first message with several. A
// dummy parent adds no number.
func threadNodes(nodes []*sortthread.Node, uid bool) []wire.ThreadNode {
	out := make([]wire.ThreadNode, len(nodes))
	for i, n := range nodes {
		t := &out[i]
		for {
			if n.Msg != nil {
				num := n.Msg.Seq
				if uid {
					num = n.Msg.UID
				}
				t.Chain = append(t.Chain, num)
			}
			if len(n.Children) != 1 {
				break
			}
			n = n.Children[0]
		}
		if len(n.Children) > 1 {
			t.SubThreads = threadNodes(n.Children, uid)
		}
	}
	return out
}
