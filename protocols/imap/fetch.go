package imap

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/vmaild/vmaild/backend/store"
)

// Fetch answers FETCH from the index (UID, FLAGS, INTERNALDATE,
// RFC822.SIZE) and opens a message file at most once per message for the
// rest. BODY[], BODY[HEADER], BODY[TEXT] and their partials of the whole
// message are copied from the file byte for byte; other sections, ENVELOPE
// and BODYSTRUCTURE are parsed with go-imap's helpers.
func (s *session) Fetch(w *imapserver.FetchWriter, numSet goimap.NumSet, options *goimap.FetchOptions) error {
	sel, err := s.selected()
	if err != nil {
		return err
	}
	idx, err := sel.resolve(numSet)
	if err != nil {
		return err
	}
	if options.ModSeq || options.ChangedSince != 0 {
		return bad("CONDSTORE is not supported")
	}
	f := sel.folder

	// Reading a body without PEEK sets \Seen, before the responses, so
	// that they carry the new flags.
	seen := map[uint32]bool{}
	if !f.ReadOnly() && setsSeen(options) {
		msgs := f.Messages()
		var uids []uint32
		for _, i := range idx {
			if !msgs[i].Flags.Has(store.FlagSeen) {
				uids = append(uids, msgs[i].UID)
			}
		}
		if len(uids) > 0 {
			ups, err := f.SetFlags(s.ctx, uids, store.FlagsAdd, []string{`\Seen`})
			if err != nil {
				return s.storeError("fetch", err)
			}
			for _, u := range ups {
				seen[u.UID] = true
			}
		}
	}

	needFile := options.Envelope || options.BodyStructure != nil || len(options.BodySection) > 0 ||
		len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0
	gone := false
	for _, i := range idx {
		m := f.Messages()[i]
		var r *store.MessageReader
		if needFile {
			r, err = f.Open(s.ctx, m.UID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				r, gone = nil, true
			case err != nil:
				return s.storeError("fetch", err)
			}
		}
		lost := needFile && r == nil
		rw := w.CreateMessage(uint32(i + 1))
		if options.UID || lost {
			// A FETCH response needs at least one item; the UID tells
			// the client which message lost its file items.
			rw.WriteUID(goimap.UID(m.UID))
		}
		if options.Flags || seen[m.UID] {
			rw.WriteFlags(s.imapFlags(m.Flags))
		}
		if options.InternalDate {
			rw.WriteInternalDate(m.InternalDate)
		}
		if options.RFC822Size {
			rw.WriteRFC822Size(m.Size)
		}
		if r != nil {
			err = fetchFromFile(rw, r, options)
			r.Close()
			if err != nil {
				rw.Close()
				return err
			}
		} else if lost {
			writeExpungedItems(rw, options)
		}
		if err := rw.Close(); err != nil {
			return err
		}
	}
	if gone {
		return errExpungedMeanwhile
	}
	return nil
}

// A FETCH may name messages another session expunged after this one last
// saw them: their index entries stay in this session's snapshot until it
// may announce the expunge, but their files are gone (RFC 2180 section
// 4.1). The choice is Dovecot 2.3's, seen on a private instance: the
// items the snapshot still holds (UID, FLAGS, INTERNALDATE, RFC822.SIZE)
// are answered, the file's items as empty as the syntax allows
// (writeExpungedItems), and the command completes with a tagged OK
// carrying EXPUNGEISSUED (RFC 5530), never NO. The client did nothing
// wrong, learns of the expunge at its next NOOP or other command that may
// announce it, and its other messages in the same FETCH arrive whole; a
// NO made imaptest's stress mix report thousands of failed FETCHes where
// Dovecot reports none. Keeping the file readable until every session has
// seen the expunge would serve the old data instead, at the price of
// store-wide bookkeeping, for a message the client is about to drop.
var errExpungedMeanwhile = imapErr(goimap.StatusResponseTypeOK, "EXPUNGEISSUED", "Some messages were already expunged")

// writeExpungedItems answers the file's items of an expunged message.
// ENVELOPE is all NIL, as Dovecot sends it. Dovecot answers BODY[...],
// BINARY[...] and BODYSTRUCTURE with NIL too, which go-imap's response
// writer cannot express (a body section is always a literal, and an empty
// one would claim an empty message), so they are left out: the client sees
// the UID, written for every such message, and no data.
func writeExpungedItems(rw *imapserver.FetchResponseWriter, options *goimap.FetchOptions) {
	if options.Envelope {
		rw.WriteEnvelope(nil)
	}
}

func setsSeen(options *goimap.FetchOptions) bool {
	for _, bs := range options.BodySection {
		if !bs.Peek {
			return true
		}
	}
	for _, bs := range options.BinarySection {
		if !bs.Peek {
			return true
		}
	}
	return false
}

// fetchFromFile writes the file-based items of one message.
func fetchFromFile(rw *imapserver.FetchResponseWriter, r *store.MessageReader, options *goimap.FetchOptions) error {
	size := r.Size()
	whole := func() *io.SectionReader { return io.NewSectionReader(r, 0, size) }
	if options.Envelope {
		// A damaged header still yields what could be read.
		h, _ := textproto.ReadHeader(bufio.NewReader(whole()))
		rw.WriteEnvelope(imapserver.ExtractEnvelope(h))
	}
	if options.BodyStructure != nil {
		rw.WriteBodyStructure(imapserver.ExtractBodyStructure(whole()))
	}
	var headerLen int64 = -1
	for _, bs := range options.BodySection {
		var data io.Reader
		var n int64
		if len(bs.Part) == 0 && len(bs.HeaderFields) == 0 && len(bs.HeaderFieldsNot) == 0 &&
			(bs.Specifier == goimap.PartSpecifierNone || bs.Specifier == goimap.PartSpecifierHeader || bs.Specifier == goimap.PartSpecifierText) {
			// Straight from the file: exact bytes, no buffering.
			off, end := int64(0), size
			if bs.Specifier != goimap.PartSpecifierNone {
				if headerLen < 0 {
					headerLen = headerLength(whole())
				}
				if bs.Specifier == goimap.PartSpecifierHeader {
					end = headerLen
				} else {
					off = headerLen
				}
			}
			if p := bs.Partial; p != nil {
				off = min(off+p.Offset, end)
				end = min(off+p.Size, end)
			}
			data, n = io.NewSectionReader(r, off, end-off), end-off
		} else {
			b := imapserver.ExtractBodySection(whole(), bs)
			data, n = bytes.NewReader(b), int64(len(b))
		}
		if err := writeItem(rw.WriteBodySection(bs, n), data, n); err != nil {
			return err
		}
	}
	for _, bs := range options.BinarySection {
		b := imapserver.ExtractBinarySection(whole(), bs)
		if err := writeItem(rw.WriteBinarySection(bs, int64(len(b))), bytes.NewReader(b), int64(len(b))); err != nil {
			return err
		}
	}
	for _, bs := range options.BinarySectionSize {
		rw.WriteBinarySectionSize(bs, imapserver.ExtractBinarySectionSize(whole(), bs))
	}
	return nil
}

// writeItem copies exactly n octets (the announced literal size) and
// closes the literal.
func writeItem(wc io.WriteCloser, r io.Reader, n int64) error {
	if _, err := io.CopyN(wc, r, n); err != nil {
		wc.Close()
		return err
	}
	return wc.Close()
}
