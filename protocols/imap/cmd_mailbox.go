package imap

import (
	"context"
	"errors"
	"io"
	"strings"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/imap/wire"
	"github.com/vmaild/vmaild/userdb"
)

// delim is the hierarchy delimiter of folder names.
const delim = '/'

func (c *conn) cmdCreate(cmd *wire.Command) error {
	a := cmd.Args.(*wire.Create)
	name, err := mailboxName(strings.TrimSuffix(a.Mailbox, string(delim)), c.utf8)
	if err != nil {
		return err
	}
	uses := make([]string, len(a.Options.SpecialUse))
	for i, u := range a.Options.SpecialUse {
		uses[i] = string(u)
	}
	// The store decides which uses a folder can have (RFC 6154 §3:
	// USEATTR when the use is the reason CREATE fails).
	if err := c.mb.CreateSpecialFolder(c.ctx, name, uses); err != nil {
		if errors.Is(err, store.ErrSpecialUse) {
			c.log.Info("imap create refused", "err", err)
			return no(goimap.ResponseCode("USEATTR"), "Unsupported special-use attribute")
		}
		return c.storeError("create", err)
	}
	return nil
}

func (c *conn) cmdDelete(cmd *wire.Command) error {
	name, err := mailboxName(cmd.Args.(*wire.MailboxArg).Mailbox, c.utf8)
	if err != nil {
		return err
	}
	if err := c.mb.DeleteFolder(c.ctx, name); err != nil {
		// A refused DELETE (INBOX, a folder that is not there) leaves the
		// session's state as it was.
		return c.storeError("delete", err)
	}
	if c.sel != nil && c.sel.folder.Name() == name {
		// The folder went away under this session: as Dovecot, close it.
		c.unselect()
	}
	return nil
}

func (c *conn) cmdRename(cmd *wire.Command) error {
	a := cmd.Args.(*wire.Rename)
	from, err := mailboxName(a.Mailbox, c.utf8)
	if err != nil {
		return err
	}
	to, err := mailboxName(strings.TrimSuffix(a.NewName, string(delim)), c.utf8)
	if err != nil {
		return err
	}
	if err := c.mb.RenameFolder(c.ctx, from, to); err != nil {
		return c.storeError("rename", err)
	}
	// The selected folder (or its parent) moved away under this session,
	// whose next poll would find it gone and end the session with BYE
	// before this RENAME's OK: close it, as DELETE does. Renaming INBOX
	// leaves INBOX in place (the next poll reports its messages gone).
	if c.sel != nil && !strings.EqualFold(from, "INBOX") {
		if n := c.sel.folder.Name(); n == from || strings.HasPrefix(n, from+string(delim)) {
			c.unselect()
		}
	}
	return nil
}

func (c *conn) cmdSubscribe(cmd *wire.Command) error {
	name, err := mailboxName(cmd.Args.(*wire.MailboxArg).Mailbox, c.utf8)
	if err != nil {
		return err
	}
	if err := c.mb.Subscribe(c.ctx, name); err != nil {
		return c.storeError("subscribe", err)
	}
	return nil
}

func (c *conn) cmdUnsubscribe(cmd *wire.Command) error {
	name, err := mailboxName(cmd.Args.(*wire.MailboxArg).Mailbox, c.utf8)
	if err != nil {
		return err
	}
	if err := c.mb.Unsubscribe(c.ctx, name); err != nil {
		return c.storeError("unsubscribe", err)
	}
	return nil
}

func (c *conn) cmdList(cmd *wire.Command) error {
	a := cmd.Args.(*wire.List)
	folders, err := c.mb.ListFolders(c.ctx)
	if err != nil {
		return c.storeError("list", err)
	}
	var subs []string
	if a.LSUB || a.Options.SelectSubscribed || a.Options.ReturnSubscribed {
		if subs, err = c.mb.Subscriptions(c.ctx); err != nil {
			return c.storeError("list", err)
		}
	}
	for _, d := range listMailboxes(folders, subs, a, c.utf8) {
		c.enc.List(&d, a.LSUB)
		if a.Options.ReturnStatus != nil && listWantsStatus(&d) {
			name, err := mailboxName(d.Mailbox, c.utf8)
			if err != nil {
				continue
			}
			// RFC 5819: a folder whose STATUS fails is listed without it.
			if st, err := c.status(name, a.Options.ReturnStatus); err == nil {
				st.Mailbox = d.Mailbox
				c.enc.StatusData(st)
			}
		}
	}
	return nil
}

func hasAttr(attrs []string, a string) bool {
	for _, x := range attrs {
		if strings.EqualFold(x, a) {
			return true
		}
	}
	return false
}

func (c *conn) cmdStatus(cmd *wire.Command) error {
	a := cmd.Args.(*wire.Status)
	name, err := mailboxName(a.Mailbox, c.utf8)
	if err != nil {
		return err
	}
	if a.Options.HighestModSeq {
		c.enableCondstore()
	}
	st, err := c.status(name, &a.Options)
	if err != nil {
		return err
	}
	st.Mailbox = a.Mailbox
	c.enc.StatusData(st)
	return nil
}

// status answers STATUS from the index. For the selected folder the
// session's own view speaks, so that its numbers agree with what the
// client was told.
func (c *conn) status(name string, options *goimap.StatusOptions) (*goimap.StatusData, error) {
	st, err := c.mb.Status(c.ctx, name)
	if err != nil {
		return nil, c.storeError("status", err)
	}
	d := &goimap.StatusData{Mailbox: name}
	if options.UIDNext {
		d.UIDNext = goimap.UID(st.UIDNext)
	}
	if options.UIDValidity {
		d.UIDValidity = st.UIDValidity
	}
	u32 := func(v uint32) *uint32 { return &v }
	if options.NumMessages {
		d.NumMessages = u32(st.Messages)
	}
	if options.NumRecent {
		d.NumRecent = u32(st.Recent)
	}
	if options.NumUnseen {
		d.NumUnseen = u32(st.Unseen)
	}
	if options.NumDeleted {
		d.NumDeleted = u32(st.Deleted)
	}
	if options.Size {
		v := st.Size
		d.Size = &v
	}
	if options.AppendLimit {
		d.AppendLimit = u32(uint32(c.srv.appendLimit()))
	}
	if options.HighestModSeq {
		d.HighestModSeq = max(st.HighestModSeq, 1)
	}
	if options.DeletedStorage {
		var v int64
		if st.Deleted > 0 {
			f, err := c.mb.Select(c.ctx, name, true)
			if err != nil {
				return nil, c.storeError("status", err)
			}
			for _, m := range f.Messages() {
				if m.Flags.Has(store.FlagDeleted) {
					v += m.Size
				}
			}
			f.Close()
		}
		d.DeletedStorage = &v
	}
	return d, nil
}

// cmdAppend stores each message of an APPEND as it streams in. A
// MULTIAPPEND (RFC 3502) is all or nothing: when a later message fails,
// the ones already stored are removed again. A UTF8 data item (RFC 6855)
// is stored as sent, like any other message.
func (c *conn) cmdAppend(cmd *wire.Command) error {
	a := cmd.Args.(*wire.Append)
	name, err := mailboxName(a.Mailbox, c.utf8)
	if err != nil {
		return err
	}
	var uids []uint32
	var validity uint32
	undo := func() {
		if len(uids) == 0 {
			return
		}
		f, err := c.mb.Select(context.WithoutCancel(c.ctx), name, false)
		if err != nil {
			c.log.Warn("imap multiappend: undoing", "err", err)
			return
		}
		defer f.Close()
		if _, err := f.Delete(context.WithoutCancel(c.ctx), uids); err != nil {
			c.log.Warn("imap multiappend: undoing", "err", err)
		}
	}
	for {
		m, err := a.Next()
		if err != nil {
			undo()
			var werr *wire.Error
			if errors.As(err, &werr) {
				if werr.Fatal {
					c.enc.Status("*", goimap.StatusResponseTypeBye, wire.Code(werr.Code), werr.Text)
					return errConnDone
				}
				return &goimap.Error{Type: werr.Type, Code: werr.Code, Text: werr.Text}
			}
			return errConnDone
		}
		if m == nil {
			break
		}
		if m.UTF8 && !c.utf8 {
			// RFC 6855 §4: BAD unless the client enabled UTF8=ACCEPT.
			// The next command skips the rest of this one.
			undo()
			return bad("APPEND UTF8 needs ENABLE UTF8=ACCEPT first")
		}
		opts := store.AppendOptions{Size: m.Size, Flags: flagNames(m.Options.Flags), InternalDate: m.Options.Time}
		c.gc.BeginData()
		body := &clientReader{r: m.Body}
		res, err := c.mb.Append(c.ctx, name, body, opts)
		c.gc.EndData()
		if err != nil && body.err != nil {
			// The client's stream failed (a deflate bomb, a timeout, a
			// hang-up), not the store: the session ends with the reason
			// rather than a NO telling the client to try again.
			undo()
			c.readError(body.err)
			return errConnDone
		}
		if err != nil {
			undo()
			if errors.Is(err, store.ErrNotFound) {
				return no(goimap.ResponseCodeTryCreate, "No such mailbox")
			}
			return c.storeError("append", err)
		}
		uids = append(uids, res.UID)
		validity = res.UIDValidity
	}
	if len(uids) == 0 {
		return bad("APPEND without a message")
	}
	var set goimap.UIDSet
	for _, u := range uids {
		set.AddNum(goimap.UID(u))
	}
	c.complete(wire.Code("APPENDUID "+uitoa(validity)+" "+set.String()), "Append completed.")
	return nil
}

// clientReader keeps the first error of reading the client other than
// io.EOF.
type clientReader struct {
	r   io.Reader
	err error
}

func (cr *clientReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	if err != nil && err != io.EOF && cr.err == nil {
		cr.err = err
	}
	return n, err
}

// flagNames converts IMAP flags for the store, dropping \Recent, which
// clients may not set.
func flagNames(flags []goimap.Flag) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if strings.EqualFold(string(f), `\Recent`) {
			continue
		}
		out = append(out, string(f))
	}
	return out
}

func (c *conn) cmdGetQuotaRoot(cmd *wire.Command) error {
	arg := cmd.Args.(*wire.MailboxArg).Mailbox
	if c.srv.Quotas == nil {
		return no(goimap.ResponseCodeNonExistent, "No quota on this server")
	}
	name, err := mailboxName(arg, c.utf8)
	if err != nil {
		return err
	}
	if err := c.folderExists(name); err != nil {
		return err
	}
	limit, usage, err := c.quotaNow()
	if err != nil {
		return err
	}
	var roots []string
	if !limit.Unlimited() {
		roots = []string{quotaRoot}
	}
	c.enc.QuotaRoot(arg, roots)
	if !limit.Unlimited() {
		c.enc.Quota(quotaRoot, quotaResources(limit, usage))
	}
	return nil
}

func (c *conn) cmdGetQuota(cmd *wire.Command) error {
	if c.srv.Quotas == nil {
		return no(goimap.ResponseCodeNonExistent, "No quota on this server")
	}
	if cmd.Args.(*wire.QuotaRoot).Root != quotaRoot {
		return no(goimap.ResponseCodeNonExistent, "No such quota root")
	}
	limit, usage, err := c.quotaNow()
	if err != nil {
		return err
	}
	if limit.Unlimited() {
		return no(goimap.ResponseCodeNonExistent, "No quota for this account")
	}
	c.enc.Quota(quotaRoot, quotaResources(limit, usage))
	return nil
}

func (c *conn) cmdSetQuota(cmd *wire.Command) error {
	return no(goimap.ResponseCodeNoPerm, "Quotas are set by the administrator")
}

func (c *conn) quotaNow() (userdb.Limit, userdb.Usage, error) {
	limit, err := c.srv.Directory.QuotaLimit(c.ctx, c.user)
	if err != nil {
		c.log.Warn("imap quota limit", "err", err)
		return limit, userdb.Usage{}, no(goimap.ResponseCodeUnavailable, "Quota information unavailable, try again later")
	}
	var usage userdb.Usage
	if !limit.Unlimited() {
		usage, err = c.srv.Quotas.Usage(c.ctx, c.user)
		if err != nil {
			c.log.Warn("imap quota usage", "err", err)
			return limit, usage, no(goimap.ResponseCodeUnavailable, "Quota information unavailable, try again later")
		}
	}
	return limit, usage, nil
}

// quotaResources is RFC 9208's STORAGE (in KiB) and MESSAGE.
func quotaResources(limit userdb.Limit, usage userdb.Usage) []wire.QuotaResource {
	var res []wire.QuotaResource
	if limit.Bytes > 0 {
		res = append(res, wire.QuotaResource{Type: goimap.QuotaResourceStorage, Usage: (max(usage.Bytes, 0) + 1023) / 1024, Limit: limit.Bytes / 1024})
	}
	if limit.Messages > 0 {
		res = append(res, wire.QuotaResource{Type: goimap.QuotaResourceMessage, Usage: max(usage.Messages, 0), Limit: limit.Messages})
	}
	return res
}

// folderExists checks a folder without creating or indexing it.
func (c *conn) folderExists(name string) error {
	folders, err := c.mb.ListFolders(c.ctx)
	if err != nil {
		return c.storeError("getquotaroot", err)
	}
	for _, fi := range folders {
		if fi.Name == name && !hasAttr(fi.Attrs, `\Noselect`) {
			return nil
		}
	}
	return no(goimap.ResponseCodeNonExistent, "No such mailbox")
}
