package imap

// Placeholders until the search, fetch and list pieces land.

import (
	"context"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/imap/wire"
)

func searchFolder(ctx context.Context, f *store.Folder, charset string, c *goimap.SearchCriteria, res goimap.UIDSet) ([]int, error) {
	out := make([]int, f.Len())
	for i := range out {
		out[i] = i
	}
	return out, nil
}

func sortFolder(ctx context.Context, f *store.Folder, idx []int, keys []wire.SortCriterion) ([]int, error) {
	return idx, nil
}

func threadFolder(ctx context.Context, f *store.Folder, idx []int, alg goimap.ThreadAlgorithm, uid bool) ([]wire.ThreadNode, error) {
	return nil, nil
}

func fetchOne(ctx context.Context, enc *wire.Encoder, f *store.Folder, seq uint32, m store.Message, args *wire.Fetch, flags []goimap.Flag, withModSeq, utf8 bool) (bool, error) {
	fw := enc.Fetch(seq)
	if args.Options.UID {
		fw.UID(goimap.UID(m.UID))
	}
	if flags != nil {
		fw.Flags(flags)
	}
	if withModSeq {
		fw.ModSeq(m.ModSeq)
	}
	if args.Options.InternalDate {
		fw.InternalDate(m.InternalDate)
	}
	if args.Options.RFC822Size {
		fw.RFC822Size(m.Size)
	}
	fw.End()
	return false, nil
}
