package imap

// Placeholders until the search, fetch and list pieces land.

import (
	"context"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/imap/wire"
)

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
