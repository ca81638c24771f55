package imap

import (
	"errors"
	"slices"
	"sort"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
)

// selection is the selected folder. The store's Folder is this session's
// own snapshot (sequence numbers change only by this session's commands and
// by Poll); the store's Watcher wakes IDLE.
type selection struct {
	folder    *store.Folder
	watcher   *store.Watcher
	searchRes goimap.UIDSet // SEARCHRES "$"
	keywords  int           // keywords the client was told of in FLAGS
}

func (sel *selection) close() {
	sel.watcher.Close()
	sel.folder.Close()
}

var errBadSeq = bad("Invalid message sequence number")

// resolve turns a sequence or UID set into ascending indexes of the view.
// "*" is the last message; UIDs that do not exist are skipped, sequence
// numbers past the end are an error (the view only shrinks when the client
// is told).
func (sel *selection) resolve(numSet goimap.NumSet) ([]int, error) {
	msgs := sel.folder.Messages()
	if goimap.IsSearchRes(numSet) {
		numSet = sel.searchRes
	}
	var out []int
	ranges := 0
	switch set := numSet.(type) {
	case goimap.SeqSet:
		n := uint32(len(msgs))
		for _, r := range set {
			start, stop := r.Start, r.Stop
			if n == 0 && (start == 0 || stop == 0) {
				continue
			}
			if start == 0 {
				start = n
			}
			if stop == 0 {
				stop = n
			}
			if start > stop {
				start, stop = stop, start
			}
			if start == 0 || stop > n {
				return nil, errBadSeq
			}
			ranges++
			for i := start; i <= stop; i++ {
				out = append(out, int(i-1))
			}
		}
	case goimap.UIDSet:
		var maxUID uint32
		if len(msgs) > 0 {
			maxUID = msgs[len(msgs)-1].UID
		}
		for _, r := range set {
			start, stop := uint32(r.Start), uint32(r.Stop)
			if start == 0 {
				start = maxUID
			}
			if stop == 0 {
				stop = maxUID
			}
			if start > stop {
				start, stop = stop, start
			}
			ranges++
			i := sort.Search(len(msgs), func(i int) bool { return msgs[i].UID >= start })
			for ; i < len(msgs) && msgs[i].UID <= stop; i++ {
				out = append(out, i)
			}
		}
	case nil:
	default:
		return nil, bad("Unsupported number set")
	}
	if ranges > 1 {
		slices.Sort(out)
		out = slices.Compact(out)
	}
	return out, nil
}

func (sel *selection) uids(idx []int) []uint32 {
	msgs := sel.folder.Messages()
	out := make([]uint32, len(idx))
	for i, j := range idx {
		out[i] = msgs[j].UID
	}
	return out
}

// saveFailed: a SEARCH or SORT with the SAVE result option that fails
// with NO sets the search result variable to the empty sequence (RFC 5182
// 2.1), so that "$" pipelined behind it acts on nothing rather than on an
// older result. A BAD leaves it alone.
func (sel *selection) saveFailed(ret *goimap.SearchOptions, err error) {
	var ie *goimap.Error
	if ret == nil || !ret.ReturnSave || errors.As(err, &ie) && ie.Type == goimap.StatusResponseTypeBad {
		return
	}
	sel.searchRes = nil
}
