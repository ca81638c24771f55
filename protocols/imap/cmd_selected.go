package imap

import (
	"errors"
	"net"
	"sort"
	"strings"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// systemFlags are listed in FLAGS and PERMANENTFLAGS; $Forwarded is the
// maildir P flag.
var systemFlags = []goimap.Flag{
	goimap.FlagSeen, goimap.FlagAnswered, goimap.FlagFlagged, goimap.FlagDeleted, goimap.FlagDraft, "$Forwarded",
}

func (c *conn) cmdSelect(cmd *wire.Command) error {
	a := cmd.Args.(*wire.Select)
	name, err := mailboxName(a.Mailbox, c.utf8)
	if err != nil {
		return err
	}
	if a.QResync != nil && !c.qresync {
		return bad("QRESYNC is not enabled")
	}
	if a.Options.CondStore {
		c.condstore = true
	}
	if c.sel != nil {
		c.unselect()
		if c.qresync {
			// RFC 7162 3.2.11: the responses after this one are about
			// the new mailbox.
			c.enc.Status("*", goimap.StatusResponseTypeOK, "CLOSED", "Previous mailbox closed.")
		}
	}
	f, err := c.mb.Select(c.ctx, name, a.ReadOnly)
	if err != nil {
		return c.storeError("select", err)
	}
	w, err := c.mb.Watch(name)
	if err != nil {
		f.Close()
		return c.storeError("select", err)
	}
	c.sel = &selection{folder: f, watcher: w}
	flags := c.writeFlags(true)
	c.enc.Exists(uint32(f.Len()))
	if !c.rev2 {
		c.enc.Recent(uint32(f.NumRecent()))
		for i, m := range f.Messages() {
			if !m.Flags.Has(store.FlagSeen) {
				c.enc.Status("*", goimap.StatusResponseTypeOK, wire.CodeUnseen(uint32(i+1)), "First unseen.")
				break
			}
		}
	}
	c.enc.Status("*", goimap.StatusResponseTypeOK, wire.CodeUIDValidity(f.UIDValidity()), "UIDs valid")
	c.enc.Status("*", goimap.StatusResponseTypeOK, wire.CodeUIDNext(goimap.UID(f.UIDNext())), "Predicted next UID")
	c.writePermanentFlags(flags)
	if c.condstore {
		c.enc.Status("*", goimap.StatusResponseTypeOK, wire.CodeHighestModSeq(max(f.HighestModSeq(), 1)), "Highest")
	}
	if q := a.QResync; q != nil && q.UIDValidity == f.UIDValidity() {
		if err := c.resync(q); err != nil {
			return err
		}
	}
	if a.ReadOnly {
		c.complete("READ-ONLY", "Examine completed")
	} else {
		c.complete("READ-WRITE", "Select completed")
	}
	return nil
}

// writeFlags writes FLAGS: the system flags and the folder's keywords,
// which it returns. Unless always, only when keywords were added since
// the client last heard (a keyword another session or this STORE
// created: RFC 9051 7.3.5 wants it announced before it is used).
func (c *conn) writeFlags(always bool) []goimap.Flag {
	kw := c.sel.folder.Keywords()
	if !always && len(kw) == c.sel.keywords {
		return nil
	}
	c.sel.keywords = len(kw)
	flags := append([]goimap.Flag(nil), systemFlags...)
	for _, k := range kw {
		flags = append(flags, goimap.Flag(k))
	}
	c.enc.Flags(flags)
	return flags
}

func (c *conn) writePermanentFlags(flags []goimap.Flag) {
	if c.sel.folder.ReadOnly() {
		c.enc.Status("*", goimap.StatusResponseTypeOK, wire.CodePermanentFlags(nil), "Read-only mailbox.")
		return
	}
	c.enc.Status("*", goimap.StatusResponseTypeOK, wire.CodePermanentFlags(append(flags, goimap.FlagWildcard)), "Flags permitted.")
}

// announceKeywords writes FLAGS and PERMANENTFLAGS when the folder has
// keywords the client was not told of.
func (c *conn) announceKeywords() {
	if c.sel == nil {
		return
	}
	if flags := c.writeFlags(false); flags != nil {
		c.writePermanentFlags(flags)
	}
}

// resync answers SELECT's QRESYNC parameter (RFC 7162 3.2.5): what was
// expunged since the client's modseq as VANISHED (EARLIER), then the
// flags of what changed since, from the folder's change log.
func (c *conn) resync(q *wire.QResync) error {
	f := c.sel.folder
	known := q.KnownUIDs
	if known == nil {
		if f.UIDNext() <= 1 {
			known = goimap.UIDSet{}
		} else {
			known = goimap.UIDSetNum()
			known.AddRange(1, goimap.UID(f.UIDNext()-1))
		}
	}
	vanished, err := c.vanishedSince(q.ModSeq, known)
	if err != nil {
		return err
	}
	c.enc.Vanished(vanished, true)
	changed, err := f.ChangedSince(c.ctx, q.ModSeq)
	if err != nil {
		return c.storeError("select", err)
	}
	msgs := f.Messages()
	for _, uid := range changed {
		seq := f.SeqNum(uid)
		if seq == 0 {
			continue
		}
		m := msgs[seq-1]
		fw := c.enc.Fetch(seq)
		fw.UID(goimap.UID(m.UID))
		fw.Flags(c.imapFlags(m.Flags, m.UID))
		fw.ModSeq(m.ModSeq)
		fw.End()
	}
	return nil
}

// vanishedSince is the UIDs of within that were expunged after modseq:
// from the index's expunge history when it reaches back that far,
// otherwise every UID of within that the view lacks (RFC 7162 allows
// reporting more than was expunged since modseq).
func (c *conn) vanishedSince(modseq uint64, within goimap.UIDSet) (goimap.UIDSet, error) {
	f := c.sel.folder
	uids, complete, err := f.ExpungedSince(c.ctx, modseq)
	if err != nil {
		return nil, c.storeError("vanished", err)
	}
	out := goimap.UIDSet{}
	maxUID := f.UIDNext() - 1
	// "*" is the highest UID the folder has given.
	static := make(goimap.UIDSet, 0, len(within))
	for _, r := range within {
		if r.Start == 0 {
			r.Start = goimap.UID(maxUID)
		}
		if r.Stop == 0 {
			r.Stop = goimap.UID(maxUID)
		}
		if r.Start > r.Stop {
			r.Start, r.Stop = r.Stop, r.Start
		}
		static = append(static, r)
	}
	within = static
	if complete {
		for _, u := range uids {
			if within.Contains(goimap.UID(u)) {
				out.AddNum(goimap.UID(u))
			}
		}
		return out, nil
	}
	msgs := f.Messages()
	for _, r := range within {
		lo, hi := uint32(r.Start), uint32(r.Stop)
		if hi > maxUID {
			hi = maxUID
		}
		if lo == 0 || lo > hi {
			continue
		}
		i := sort.Search(len(msgs), func(i int) bool { return msgs[i].UID >= lo })
		next := lo
		for ; i < len(msgs) && msgs[i].UID <= hi; i++ {
			if msgs[i].UID > next {
				out.AddRange(goimap.UID(next), goimap.UID(msgs[i].UID-1))
			}
			next = msgs[i].UID + 1
		}
		if next <= hi {
			out.AddRange(goimap.UID(next), goimap.UID(hi))
		}
	}
	return out, nil
}

func (c *conn) cmdUnselect(cmd *wire.Command) error {
	c.unselect()
	return nil
}

// cmdClose removes the \Deleted messages silently, unless the folder was
// EXAMINEd, and unselects.
func (c *conn) cmdClose(cmd *wire.Command) error {
	f := c.sel.folder
	var err error
	if !f.ReadOnly() {
		_, err = f.Expunge(c.ctx, nil)
	}
	c.unselect()
	if err != nil {
		return c.storeError("close", err)
	}
	return nil
}

var errReadOnly = no("", "Mailbox is read-only")

func (c *conn) cmdExpunge(cmd *wire.Command) error {
	sel := c.sel
	if sel.folder.ReadOnly() {
		return errReadOnly
	}
	var list []uint32
	if a, ok := cmd.Args.(*wire.UIDExpunge); ok {
		idx, err := sel.resolve(a.UIDs)
		if err != nil {
			return err
		}
		if len(idx) == 0 {
			return nil
		}
		list = sel.uids(idx)
	}
	exp, err := sel.folder.Expunge(c.ctx, list)
	c.writeExpunged(exp)
	if err != nil {
		return c.storeError("expunge", err)
	}
	if c.condstore {
		if err := c.poll(true); err != nil {
			return errConnDone
		}
		c.complete(wire.CodeHighestModSeq(max(sel.folder.HighestModSeq(), 1)), "Expunge completed")
	}
	return nil
}

// writeExpunged announces expunged messages: EXPUNGE responses, or one
// VANISHED once QRESYNC is enabled (RFC 7162 3.2.10).
func (c *conn) writeExpunged(exp []store.Expunged) {
	if len(exp) == 0 {
		return
	}
	if c.qresync {
		var set goimap.UIDSet
		for _, e := range exp {
			set.AddNum(goimap.UID(e.UID))
		}
		c.enc.Vanished(set, false)
		return
	}
	for _, e := range exp {
		c.enc.Expunge(e.Seq)
	}
}

// poll reports what other sessions and deliveries changed. The store
// merges every kind of change at once, so after FETCH, STORE and SEARCH,
// where EXPUNGE may not be sent, nothing is polled: the client hears of
// the changes with its next other command. An error ends the session
// (BYE already written).
func (c *conn) poll(allowExpunge bool) error {
	if c.sel == nil || !allowExpunge {
		return nil
	}
	f := c.sel.folder
	u, err := f.Poll(c.ctx)
	if err != nil {
		switch {
		case errors.Is(err, store.ErrUIDValidity):
			c.enc.Status("*", goimap.StatusResponseTypeBye, "", "Mailbox UIDVALIDITY changed, please reconnect")
			return err
		case errors.Is(err, store.ErrNotFound):
			c.enc.Status("*", goimap.StatusResponseTypeBye, "", "Selected mailbox was deleted or renamed")
			return err
		}
		c.log.Warn("imap poll", "err", err)
		return nil
	}
	c.writeExpunged(u.Expunged)
	c.announceKeywords()
	if len(u.New) > 0 {
		c.enc.Exists(u.NumMessages)
		if !c.rev2 {
			c.enc.Recent(uint32(f.NumRecent()))
		}
	}
	for _, fu := range u.Flags {
		fw := c.enc.Fetch(fu.Seq)
		if c.qresync {
			fw.UID(goimap.UID(fu.UID))
		}
		fw.Flags(c.imapFlags(fu.Flags, fu.UID))
		if c.condstore {
			fw.ModSeq(fu.ModSeq)
		}
		fw.End()
	}
	return nil
}

// imapFlags is a message's flags for FLAGS: \Recent included in an
// IMAP4rev1 session.
func (c *conn) imapFlags(fl store.Flags, uid uint32) []goimap.Flag {
	names := c.sel.folder.FlagNames(fl)
	out := make([]goimap.Flag, len(names), len(names)+1)
	for i, n := range names {
		out[i] = goimap.Flag(n)
	}
	if !c.rev2 && c.sel.folder.IsRecent(uid) {
		out = append(out, wire.FlagRecent)
	}
	return out
}

// enableCondstore is a CONDSTORE enabling command's effect (RFC 7162
// 3.1): with a mailbox selected, the client learns its HIGHESTMODSEQ.
func (c *conn) enableCondstore() {
	if c.condstore {
		return
	}
	c.condstore = true
	if c.sel != nil {
		c.enc.Status("*", goimap.StatusResponseTypeOK, wire.CodeHighestModSeq(max(c.sel.folder.HighestModSeq(), 1)), "Highest")
	}
}

// flagStrings is imapFlags as strings.
func (c *conn) flagStrings(fl store.Flags, uid uint32) []string {
	names := c.sel.folder.FlagNames(fl)
	if !c.rev2 && c.sel.folder.IsRecent(uid) {
		names = append(names, string(wire.FlagRecent))
	}
	return names
}

var errBadDone = errors.New("imap: IDLE ended without DONE")

// cmdIdle pushes changes as the store announces them, and looks now and
// then for changes of other programs, which announce nothing, until the
// client says DONE.
func (c *conn) cmdIdle(cmd *wire.Command) error {
	if err := c.poll(true); err != nil {
		return errConnDone
	}
	c.enc.Continue("idling")
	if c.enc.Flush() != nil {
		return errConnDone
	}
	c.readFor = c.srv.idleTimeout()
	c.idling = true
	defer func() { c.idling = false }()
	done := make(chan error, 1)
	go func() {
		line, err := c.r.ReadLine()
		if err == nil && !strings.EqualFold(line, "DONE") {
			err = errBadDone
		}
		done <- err
	}()
	c.gc.Idle() // Shutdown may end the wait
	t := time.NewTicker(c.srv.idlePoll())
	defer t.Stop()
	var wake <-chan struct{}
	if c.sel != nil {
		wake = c.sel.watcher.C()
	}
	for {
		select {
		case err := <-done:
			return c.idleEnd(err)
		case <-wake:
			c.sel.watcher.Take()
		case <-t.C:
		}
		if err := c.poll(true); err != nil {
			return c.idleAbort(done)
		}
		if c.enc.Flush() != nil {
			return c.idleAbort(done)
		}
	}
}

// idleAbort ends an IDLE the server gives up on (the folder is gone, the
// client does not read): what is buffered, a BYE, is sent, and the
// connection closed so that the goroutine waiting for DONE returns now,
// not when the client next writes or the autologout timer fires.
func (c *conn) idleAbort(done <-chan error) error {
	c.enc.Flush()
	c.nc().Close()
	<-done
	return errConnDone
}

func (c *conn) idleEnd(err error) error {
	var ne net.Error
	switch {
	case err == nil:
		if !c.gc.Busy() {
			c.enc.Status("*", goimap.StatusResponseTypeBye, "", gate.Shutdown.Text())
			return errConnDone
		}
		return nil
	case errors.Is(err, errBadDone):
		return bad("Expected DONE")
	case errors.As(err, &ne) && ne.Timeout():
		c.readError(err)
		return errConnDone
	}
	var werr *wire.Error
	if errors.As(err, &werr) {
		return bad("Expected DONE")
	}
	return errConnDone
}

func (c *conn) cmdFetch(cmd *wire.Command) error {
	a := cmd.Args.(*wire.Fetch)
	sel := c.sel
	f := sel.folder
	if a.Options.ModSeq || a.Options.ChangedSince != 0 {
		c.enableCondstore()
	}
	if a.Vanished && (!c.qresync || !a.UID || a.Options.ChangedSince == 0) {
		return bad("VANISHED needs QRESYNC, UID FETCH and CHANGEDSINCE")
	}
	idx, err := sel.resolve(a.NumSet)
	if err != nil {
		return err
	}
	// Reading a body without PEEK sets \Seen, before the responses, so
	// that they carry the new flags.
	forced := map[uint32]bool{}
	if !f.ReadOnly() && setsSeen(a) {
		msgs := f.Messages()
		var uids []uint32
		for _, i := range idx {
			if !msgs[i].Flags.Has(store.FlagSeen) {
				uids = append(uids, msgs[i].UID)
			}
		}
		if len(uids) > 0 {
			ups, err := f.SetFlags(c.ctx, uids, store.FlagsAdd, []string{`\Seen`})
			if err != nil {
				return c.storeError("fetch", err)
			}
			for _, u := range ups {
				forced[u.UID] = true
			}
		}
	}
	if cs := a.Options.ChangedSince; cs != 0 {
		msgs := f.Messages()
		kept := idx[:0]
		for _, i := range idx {
			if msgs[i].ModSeq > cs {
				kept = append(kept, i)
			}
		}
		idx = kept
		if a.Vanished {
			within, _ := a.NumSet.(goimap.UIDSet)
			if goimap.IsSearchRes(a.NumSet) {
				within = sel.searchRes
			}
			vanished, err := c.vanishedSince(cs, within)
			if err != nil {
				return err
			}
			c.enc.Vanished(vanished, true)
		}
	}
	// RFC 7162 3.1.4.1: MODSEQ when asked for, with CHANGEDSINCE, and in
	// every FETCH once CONDSTORE is enabled and flags are sent.
	withModSeq := a.Options.ModSeq || a.Options.ChangedSince != 0 || c.condstore && (a.Options.Flags || len(forced) > 0)
	gone := false
	for _, i := range idx {
		m := f.Messages()[i]
		// fetchOne writes FLAGS itself, without allocating, with
		// \Recent; an IMAP4rev2 session has no \Recent.
		var flags []string
		if forced[m.UID] || a.Options.Flags && c.rev2 {
			flags = c.flagStrings(m.Flags, m.UID)
		}
		lost, err := fetchOne(c.ctx, c.enc, f, uint32(i+1), m, a, flags, withModSeq, c.utf8)
		if err != nil {
			var ie *goimap.Error
			if errors.As(err, &ie) {
				return err
			}
			return c.storeError("fetch", err)
		}
		gone = gone || lost
		if c.enc.Err() != nil {
			return errConnDone
		}
	}
	if gone {
		c.complete("EXPUNGEISSUED", "Some messages were also expunged")
	}
	return nil
}

// setsSeen reports whether a FETCH reads a body without PEEK.
func setsSeen(a *wire.Fetch) bool {
	for _, s := range a.Options.BodySection {
		if !s.Peek {
			return true
		}
	}
	for _, s := range a.Options.BinarySection {
		if !s.Peek {
			return true
		}
	}
	return a.RFC822.Whole || a.RFC822.Text
}

func (c *conn) cmdStore(cmd *wire.Command) error {
	a := cmd.Args.(*wire.Store)
	sel := c.sel
	if sel.folder.ReadOnly() {
		return errReadOnly
	}
	if a.Conditional {
		c.enableCondstore()
	}
	idx, err := sel.resolve(a.NumSet)
	if err != nil {
		return err
	}
	op := store.FlagsReplace
	switch a.Flags.Op {
	case goimap.StoreFlagsAdd:
		op = store.FlagsAdd
	case goimap.StoreFlagsDel:
		op = store.FlagsRemove
	}
	res, err := sel.folder.StoreFlags(c.ctx, sel.uids(idx), op, flagNames(a.Flags.Flags),
		store.StoreOptions{Conditional: a.Conditional, UnchangedSince: a.Options.UnchangedSince})
	if err != nil {
		return c.storeError("store", err)
	}
	c.announceKeywords()
	for _, u := range res.Updates {
		if a.Flags.Silent && !c.condstore {
			break
		}
		fw := c.enc.Fetch(u.Seq)
		if a.UID || c.qresync {
			fw.UID(goimap.UID(u.UID))
		}
		if !a.Flags.Silent {
			fw.Flags(c.imapFlags(u.Flags, u.UID))
		}
		if c.condstore {
			fw.ModSeq(u.ModSeq)
		}
		fw.End()
	}
	if len(res.Modified) > 0 {
		var set goimap.NumSet
		if a.UID {
			s := goimap.UIDSet{}
			for _, u := range res.Modified {
				s.AddNum(goimap.UID(u))
			}
			set = s
		} else {
			s := goimap.SeqSet{}
			for _, u := range res.Modified {
				if seq := sel.folder.SeqNum(u); seq != 0 {
					s.AddNum(seq)
				}
			}
			set = s
		}
		c.complete(wire.CodeModified(set), "Conditional STORE failed")
	}
	return nil
}

func (c *conn) cmdCopy(cmd *wire.Command) error {
	a := cmd.Args.(*wire.Copy)
	sel := c.sel
	if a.Move && sel.folder.ReadOnly() {
		return errReadOnly
	}
	dest, err := mailboxName(a.Mailbox, c.utf8)
	if err != nil {
		return err
	}
	idx, err := sel.resolve(a.NumSet)
	if err != nil {
		return err
	}
	if len(idx) == 0 {
		if a.UID {
			return nil
		}
		return no("", "No messages to copy")
	}
	var res store.CopyResult
	var exp []store.Expunged
	if a.Move {
		res, exp, err = sel.folder.Move(c.ctx, sel.uids(idx), dest)
	} else {
		res, err = sel.folder.Copy(c.ctx, sel.uids(idx), dest)
	}
	code := copyUID(res)
	if a.Move && code != "" {
		c.enc.Status("*", goimap.StatusResponseTypeOK, code, "Moved UIDs.")
		code = ""
	}
	c.writeExpunged(exp)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return no(goimap.ResponseCodeTryCreate, "No such mailbox")
		}
		return c.storeError(strings.ToLower(cmd.Name), err)
	}
	c.complete(code, "")
	return nil
}

// copyUID is the COPYUID response code (RFC 4315), "" when nothing was
// copied.
func copyUID(res store.CopyResult) wire.Code {
	if len(res.Source) == 0 {
		return ""
	}
	var src, dst goimap.UIDSet
	for i := range res.Source {
		src.AddNum(goimap.UID(res.Source[i]))
		dst.AddNum(goimap.UID(res.Dest[i]))
	}
	return wire.CodeCopyUID(res.UIDValidity, src, dst)
}

func (c *conn) cmdSearch(cmd *wire.Command) error {
	a := cmd.Args.(*wire.Search)
	sel := c.sel
	if a.Criteria.ModSeq != nil {
		c.enableCondstore()
	}
	idx, err := searchFolder(c.ctx, sel.folder, a.Charset, &a.Criteria, sel.searchRes)
	if err != nil {
		sel.saveFailed(a.Return, err)
		return err
	}
	ret := a.Return
	if ret == nil && c.rev2 {
		ret = &goimap.SearchOptions{ReturnAll: true}
	}
	if ret == nil {
		c.enc.Search(c.numbers(idx, a.UID), c.maxModSeq(idx, a.Criteria.ModSeq != nil))
		return nil
	}
	c.esearch(cmd.Tag, a.UID, idx, ret, a.Criteria.ModSeq != nil)
	return nil
}

// esearch answers ESEARCH and ESORT (RFC 4731, 5267) and keeps SEARCHRES's
// SAVE (RFC 5182). idx is in the order to report (sorted for ESORT).
//
// With MODSEQ in the criteria, the MODSEQ returned is the highest of the
// messages the answer names (RFC 7162 3.1.5): only MIN's and MAX's when
// nothing else is asked.
func (c *conn) esearch(tag string, uid bool, idx []int, ret *goimap.SearchOptions, modUsed bool) {
	sel := c.sel
	msgs := sel.folder.Messages()
	if ret.ReturnSave {
		var save goimap.UIDSet
		switch {
		case len(idx) == 0:
		case (ret.ReturnMin || ret.ReturnMax) && !ret.ReturnAll && !ret.ReturnCount:
			if ret.ReturnMin {
				save.AddNum(goimap.UID(msgs[idx[0]].UID))
			}
			if ret.ReturnMax {
				save.AddNum(goimap.UID(msgs[idx[len(idx)-1]].UID))
			}
		default:
			for _, i := range idx {
				save.AddNum(goimap.UID(msgs[i].UID))
			}
		}
		sel.searchRes = save
		if !ret.ReturnMin && !ret.ReturnMax && !ret.ReturnAll && !ret.ReturnCount {
			return
		}
	}
	nums := c.numbers(idx, uid)
	var modseq uint64
	switch {
	case !modUsed || len(idx) == 0:
	case ret.ReturnAll || ret.ReturnCount:
		modseq = c.maxModSeq(idx, true)
	default:
		var named []int
		if ret.ReturnMin {
			named = append(named, idx[0])
		}
		if ret.ReturnMax {
			named = append(named, idx[len(idx)-1])
		}
		modseq = c.maxModSeq(named, true)
	}
	d := &goimap.SearchData{ModSeq: modseq}
	if len(nums) > 0 {
		if ret.ReturnMin {
			d.Min = nums[0]
		}
		if ret.ReturnMax {
			d.Max = nums[len(nums)-1]
		}
		if ret.ReturnAll {
			d.All = orderedSet(nums, uid)
		}
	}
	d.Count = uint32(len(nums))
	c.enc.ESearch(tag, uid, d, ret.ReturnCount)
}

// orderedSet is nums as a sequence set in the given order: consecutive
// ascending runs become ranges, nothing is reordered (ESORT's ALL).
func orderedSet(nums []uint32, uid bool) goimap.NumSet {
	if uid {
		var s goimap.UIDSet
		for i := 0; i < len(nums); {
			j := i
			for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
				j++
			}
			s = append(s, goimap.UIDRange{Start: goimap.UID(nums[i]), Stop: goimap.UID(nums[j])})
			i = j + 1
		}
		return s
	}
	var s goimap.SeqSet
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		s = append(s, goimap.SeqRange{Start: nums[i], Stop: nums[j]})
		i = j + 1
	}
	return s
}

// numbers is idx as sequence numbers or UIDs.
func (c *conn) numbers(idx []int, uid bool) []uint32 {
	out := make([]uint32, len(idx))
	msgs := c.sel.folder.Messages()
	for k, i := range idx {
		if uid {
			out[k] = msgs[i].UID
		} else {
			out[k] = uint32(i + 1)
		}
	}
	return out
}

// maxModSeq is the highest modseq of idx when a search used MODSEQ
// (RFC 7162 3.1.5), else 0.
func (c *conn) maxModSeq(idx []int, used bool) uint64 {
	if !used {
		return 0
	}
	var m uint64
	msgs := c.sel.folder.Messages()
	for _, i := range idx {
		m = max(m, msgs[i].ModSeq)
	}
	return m
}

func (c *conn) cmdSort(cmd *wire.Command) error {
	a := cmd.Args.(*wire.Sort)
	sel := c.sel
	if a.Criteria.ModSeq != nil {
		c.enableCondstore()
	}
	idx, err := searchFolder(c.ctx, sel.folder, a.Charset, &a.Criteria, sel.searchRes)
	if err != nil {
		sel.saveFailed(a.Return, err)
		return err
	}
	if idx, err = c.srv.sorts.sortFolder(c.ctx, sel.folder, idx, a.Keys); err != nil {
		err = c.storeError("sort", err)
		sel.saveFailed(a.Return, err)
		return err
	}
	if a.Return != nil {
		c.esearch(cmd.Tag, a.UID, idx, a.Return, a.Criteria.ModSeq != nil)
		return nil
	}
	c.enc.Sort(c.numbers(idx, a.UID), c.maxModSeq(idx, a.Criteria.ModSeq != nil))
	return nil
}

func (c *conn) cmdThread(cmd *wire.Command) error {
	a := cmd.Args.(*wire.Thread)
	sel := c.sel
	idx, err := searchFolder(c.ctx, sel.folder, a.Charset, &a.Criteria, sel.searchRes)
	if err != nil {
		return err
	}
	threads, err := c.srv.sorts.threadFolder(c.ctx, sel.folder, idx, a.Algorithm, a.UID)
	if err != nil {
		return c.storeError("thread", err)
	}
	c.enc.Thread(threads)
	return nil
}
