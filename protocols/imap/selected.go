package imap

import (
	"errors"
	"slices"
	"sort"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/vmaild/vmaild/backend/store"
)

// selection is the selected folder. The store's Folder is this session's
// own snapshot (sequence numbers change only by this session's commands and
// by Poll), which is exactly the per-client view go-imap's MailboxTracker
// and SessionTracker would otherwise keep; the store's Watcher wakes IDLE.
type selection struct {
	folder    *store.Folder
	watcher   *store.Watcher
	searchRes goimap.UIDSet // SEARCHRES "$"
}

func (sel *selection) close() {
	sel.watcher.Close()
	sel.folder.Close()
}

func (s *session) unselect() {
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
}

// systemFlags are listed in FLAGS and PERMANENTFLAGS; $Forwarded is the
// maildir P flag.
var systemFlags = []goimap.Flag{
	goimap.FlagSeen, goimap.FlagAnswered, goimap.FlagFlagged, goimap.FlagDeleted, goimap.FlagDraft, "$Forwarded",
}

func (s *session) Select(name string, options *goimap.SelectOptions) (*goimap.SelectData, error) {
	if err := s.needMailbox(); err != nil {
		return nil, err
	}
	s.unselect()
	readOnly := options != nil && options.ReadOnly
	f, err := s.mb.Select(s.ctx, name, readOnly)
	if err != nil {
		return nil, s.storeError("select", err)
	}
	w, err := s.mb.Watch(name)
	if err != nil {
		f.Close()
		return nil, s.storeError("select", err)
	}
	s.sel = &selection{folder: f, watcher: w}
	d := &goimap.SelectData{
		NumMessages: uint32(f.Len()),
		UIDNext:     goimap.UID(f.UIDNext()),
		UIDValidity: f.UIDValidity(),
	}
	d.Flags = append(d.Flags, systemFlags...)
	for _, k := range f.Keywords() {
		d.Flags = append(d.Flags, goimap.Flag(k))
	}
	if !readOnly {
		d.PermanentFlags = append(append([]goimap.Flag(nil), d.Flags...), goimap.FlagWildcard)
	}
	for i, m := range f.Messages() {
		if !m.Flags.Has(store.FlagSeen) {
			d.FirstUnseenSeqNum = uint32(i + 1)
			break
		}
	}
	return d, nil
}

func (s *session) Unselect() error {
	s.unselect()
	return nil
}

func (s *session) selected() (*selection, error) {
	if s.sel == nil {
		return nil, errNoSelection
	}
	return s.sel, nil
}

func (s *session) imapFlags(fl store.Flags) []goimap.Flag {
	names := s.sel.folder.FlagNames(fl)
	out := make([]goimap.Flag, len(names))
	for i, n := range names {
		out[i] = goimap.Flag(n)
	}
	return out
}

// Poll reports what other sessions and deliveries changed. The store
// merges every kind of change at once, so after FETCH, STORE and SEARCH,
// where EXPUNGE may not be sent, nothing is polled: the client hears of the
// changes with its next other command.
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.sel == nil || !allowExpunge {
		return nil
	}
	return s.poll(w)
}

func (s *session) poll(w *imapserver.UpdateWriter) error {
	u, err := s.sel.folder.Poll(s.ctx)
	if err != nil {
		switch {
		case errors.Is(err, store.ErrUIDValidity):
			s.conn.Bye("Mailbox UIDVALIDITY changed, please reconnect")
			return err
		case errors.Is(err, store.ErrNotFound):
			s.conn.Bye("Selected mailbox was deleted or renamed")
			return err
		}
		s.log.Warn("imap poll", "err", err)
		return nil
	}
	for _, e := range u.Expunged {
		if err := w.WriteExpunge(e.Seq); err != nil {
			return err
		}
	}
	if len(u.New) > 0 {
		if err := w.WriteNumMessages(u.NumMessages); err != nil {
			return err
		}
	}
	for _, fu := range u.Flags {
		if err := w.WriteMessageFlags(fu.Seq, goimap.UID(fu.UID), s.imapFlags(fu.Flags)); err != nil {
			return err
		}
	}
	return nil
}

// Idle pushes changes as the store announces them, and looks now and then
// for changes of other programs, which announce nothing.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	if s.closed {
		return nil
	}
	if s.sel == nil {
		select {
		case <-stop:
		case <-s.ctx.Done():
		}
		return nil
	}
	if err := s.poll(w); err != nil {
		return err
	}
	t := time.NewTicker(s.srv.idlePoll())
	defer t.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-s.ctx.Done():
			return nil
		case <-s.sel.watcher.C():
			s.sel.watcher.Take()
		case <-t.C:
		}
		if err := s.poll(w); err != nil {
			return err
		}
	}
}

var errReadOnly = no("", "Mailbox is read-only")

func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *goimap.UIDSet) error {
	sel, err := s.selected()
	if err != nil {
		return err
	}
	if sel.folder.ReadOnly() {
		if s.front.currentCommand() == "CLOSE" {
			return nil // CLOSE of an EXAMINEd mailbox expunges nothing
		}
		return errReadOnly
	}
	var list []uint32
	if uids != nil {
		idx, err := sel.resolve(*uids)
		if err != nil {
			return err
		}
		list = sel.uids(idx)
	}
	exp, err := sel.folder.Expunge(s.ctx, list)
	for _, e := range exp {
		if werr := w.WriteExpunge(e.Seq); werr != nil {
			return werr
		}
	}
	if err != nil {
		return s.storeError("expunge", err)
	}
	return nil
}

func (s *session) Store(w *imapserver.FetchWriter, numSet goimap.NumSet, flags *goimap.StoreFlags, options *goimap.StoreOptions) error {
	sel, err := s.selected()
	if err != nil {
		return err
	}
	if sel.folder.ReadOnly() {
		return errReadOnly
	}
	idx, err := sel.resolve(numSet)
	if err != nil {
		return err
	}
	op := store.FlagsReplace
	switch flags.Op {
	case goimap.StoreFlagsAdd:
		op = store.FlagsAdd
	case goimap.StoreFlagsDel:
		op = store.FlagsRemove
	}
	ups, err := sel.folder.SetFlags(s.ctx, sel.uids(idx), op, flagNames(flags.Flags))
	if err != nil {
		return s.storeError("store", err)
	}
	if flags.Silent {
		return nil
	}
	_, byUID := numSet.(goimap.UIDSet)
	for _, u := range ups {
		rw := w.CreateMessage(u.Seq)
		if byUID {
			rw.WriteUID(goimap.UID(u.UID))
		}
		rw.WriteFlags(s.imapFlags(u.Flags))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

func copyData(res store.CopyResult) *goimap.CopyData {
	if len(res.Source) == 0 {
		return nil
	}
	d := &goimap.CopyData{UIDValidity: res.UIDValidity}
	for i := range res.Source {
		d.SourceUIDs.AddNum(goimap.UID(res.Source[i]))
		d.DestUIDs.AddNum(goimap.UID(res.Dest[i]))
	}
	return d
}

func (s *session) Copy(numSet goimap.NumSet, dest string) (*goimap.CopyData, error) {
	sel, err := s.selected()
	if err != nil {
		return nil, err
	}
	idx, err := sel.resolve(numSet)
	if err != nil {
		return nil, err
	}
	if len(idx) == 0 {
		return nil, nil
	}
	res, err := sel.folder.Copy(s.ctx, sel.uids(idx), dest)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, no(goimap.ResponseCodeTryCreate, "No such mailbox")
		}
		return nil, s.storeError("copy", err)
	}
	return copyData(res), nil
}

func (s *session) Move(w *imapserver.MoveWriter, numSet goimap.NumSet, dest string) error {
	sel, err := s.selected()
	if err != nil {
		return err
	}
	if sel.folder.ReadOnly() {
		return errReadOnly
	}
	idx, err := sel.resolve(numSet)
	if err != nil {
		return err
	}
	if len(idx) == 0 {
		return nil
	}
	res, exp, err := sel.folder.Move(s.ctx, sel.uids(idx), dest)
	if d := copyData(res); d != nil {
		if werr := w.WriteCopyData(d); werr != nil {
			return werr
		}
	}
	for _, e := range exp {
		if werr := w.WriteExpunge(e.Seq); werr != nil {
			return werr
		}
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return no(goimap.ResponseCodeTryCreate, "No such mailbox")
		}
		return s.storeError("move", err)
	}
	return nil
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
