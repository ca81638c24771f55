package imap

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gosasl "github.com/emersion/go-sasl"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/imap/wire"
	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/protocols/sasl"
	"github.com/vmaild/vmaild/userdb"
)

// session is one connection's IMAP state behind go-imap. go-imap calls it
// from the connection's goroutine only (IDLE from a second goroutine while
// the first waits for DONE), so it needs no lock of its own.
type session struct {
	srv   *Server
	conn  *imapserver.Conn
	front *frontConn
	ctx   context.Context
	log   *slog.Logger

	authed atomic.Bool // read by the front when it completes capabilities
	user   string
	mb     *store.Mailbox
	quota  *liveQuota
	sel    *selection

	closeOnce sync.Once
	// idleMu is held by Idle for its whole run: go-imap returns from IDLE
	// on a dropped connection without waiting for Idle to end, so Close
	// takes it before tearing the selection down.
	idleMu sync.Mutex
	closed bool
}

var (
	_ imapserver.SessionIMAP4rev2      = (*session)(nil)
	_ imapserver.SessionSASL           = (*session)(nil)
	_ imapserver.SessionUnauthenticate = (*session)(nil)
	_ imapserver.SessionAppendLimit    = (*session)(nil)
)

func (s *Server) newSession(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	f, ok := c.NetConn().(*frontConn)
	if !ok {
		return nil, nil, errors.New("imap: connection without front")
	}
	sess := &session{srv: s, conn: c, front: f, ctx: f.ctx, log: s.logger().With("remote", f.ip.String())}
	f.mu.Lock()
	f.sess = sess
	f.mu.Unlock()
	return sess, nil, nil
}

func (s *session) loggedIn() bool { return s.authed.Load() }

func (s *session) Close() error {
	s.closeOnce.Do(func() {
		s.idleMu.Lock()
		s.closed = true
		s.unselect()
		s.idleMu.Unlock()
	})
	return nil
}

func imapErr(typ goimap.StatusResponseType, code goimap.ResponseCode, text string) *goimap.Error {
	return &goimap.Error{Type: typ, Code: code, Text: text}
}

func no(code goimap.ResponseCode, text string) *goimap.Error {
	return imapErr(goimap.StatusResponseTypeNo, code, text)
}

func bad(text string) *goimap.Error {
	return imapErr(goimap.StatusResponseTypeBad, goimap.ResponseCodeClientBug, text)
}

var (
	errPrivacy     = no(goimap.ResponseCodePrivacyRequired, "TLS is required to log in")
	errAuthFailed  = no(goimap.ResponseCodeAuthenticationFailed, "Authentication failed")
	errDirectory   = no(goimap.ResponseCodeUnavailable, "User directory unavailable, try again later")
	errBusy        = no(goimap.ResponseCodeUnavailable, "Too many logins at once, try again later")
	errMailboxDown = no(goimap.ResponseCodeUnavailable, "Mailbox unavailable, try again later")
	errNoSelection = bad("No mailbox selected")
)

// ---- not authenticated ----

func (s *session) Login(username, password string) error {
	if !s.front.tlsOrInsecure() {
		return errPrivacy
	}
	return s.authenticate(username, password)
}

// authenticate checks a password through the directory under the shared
// login service and opens the account's mailbox.
func (s *session) authenticate(username, password string) error {
	var acct *userdb.Account
	check := sasl.Authenticator(func(ctx context.Context, u, p string) error {
		a, err := s.srv.Directory.Authenticate(ctx, u, p)
		if err == nil && a == nil {
			err = userdb.ErrNotFound
		}
		acct = a
		return err
	})
	err := check.Guarded(s.srv.Logins, s.front.ip)(s.ctx, username, password)
	switch {
	case err == nil:
	case errors.Is(err, login.ErrBusy):
		s.log.Warn("imap login refused: too many logins being verified", "user", username)
		return errBusy
	case userdb.Temporary(err) || s.ctx.Err() != nil:
		s.log.Warn("imap login: directory unavailable", "user", username, "err", err)
		return errDirectory
	default:
		s.log.Info("imap login failed", "user", username, "err", err)
		return errAuthFailed
	}
	a := store.Account{Address: acct.Address, Maildir: acct.Maildir}
	var q *liveQuota
	if s.srv.Quotas != nil {
		q = &liveQuota{dir: s.srv.Directory, quotas: s.srv.Quotas, address: acct.Address}
		a.Quota = q
	}
	mb, err := s.srv.Store.OpenMailbox(s.ctx, a)
	if err != nil {
		s.log.Error("imap login: opening mailbox", "user", acct.Address, "err", err)
		return errMailboxDown
	}
	s.user, s.mb, s.quota = acct.Address, mb, q
	s.log = s.log.With("user", acct.Address)
	s.authed.Store(true)
	s.log.Info("imap login", "tls", s.front.usingTLS())
	return nil
}

func (s *session) AuthenticateMechanisms() []string {
	return sasl.Mechanisms(s.front.tlsOrInsecure())
}

func (s *session) Authenticate(mech string) (gosasl.Server, error) {
	if !s.front.tlsOrInsecure() {
		return nil, errPrivacy
	}
	srv, err := sasl.NewServer(s.ctx, mech, true, func(ctx context.Context, username, password string) error {
		return s.authenticate(username, password)
	})
	if err != nil {
		return nil, no("", "Unsupported SASL mechanism")
	}
	return saslReplies{srv}, nil
}

// saslReplies turns SASL errors into IMAP replies; go-imap would call any
// other error an internal server error.
type saslReplies struct{ gosasl.Server }

func (r saslReplies) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := r.Server.Next(response)
	if err != nil {
		var ie *goimap.Error
		switch {
		case errors.As(err, &ie):
		case errors.Is(err, sasl.ErrMalformed), errors.Is(err, gosasl.ErrUnexpectedClientResponse):
			err = bad("Malformed SASL response")
		default:
			err = errAuthFailed
		}
	}
	return challenge, done, err
}

func (s *session) Unauthenticate() error {
	s.unselect()
	s.authed.Store(false)
	s.user, s.mb, s.quota = "", nil, nil
	return nil
}

func (s *session) AppendLimit() uint32 { return uint32(s.srv.appendLimit()) }

// ---- authenticated ----

// storeError maps a store error class to a reply; the details (paths) go
// to the log only.
func (s *session) storeError(op string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return no(goimap.ResponseCodeNonExistent, "No such mailbox")
	case errors.Is(err, store.ErrExists):
		return no(goimap.ResponseCodeAlreadyExists, "Mailbox already exists")
	case errors.Is(err, store.ErrOverQuota):
		return no(goimap.ResponseCodeOverQuota, "Quota exceeded")
	case errors.Is(err, store.ErrInvalid):
		s.log.Info("imap "+op+" refused", "err", err)
		return no(goimap.ResponseCodeCannot, "Not possible: "+invalidReason(err))
	case store.Temporary(err), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("imap "+op+" failed", "err", err)
		return no(goimap.ResponseCodeUnavailable, "Temporary failure, try again later")
	}
	s.log.Error("imap "+op+" failed", "err", err)
	return no(goimap.ResponseCodeServerBug, "Internal error")
}

// invalidReason keeps the part of an ErrInvalid message that speaks about
// the client's argument, not about the server's directories.
func invalidReason(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, store.ErrInvalid.Error()+": "); i >= 0 {
		msg = msg[i+len(store.ErrInvalid.Error())+2:]
	}
	if strings.Contains(msg, "/") && strings.Contains(msg, "maildir") {
		return "invalid argument"
	}
	return msg
}

func (s *session) needMailbox() error {
	if s.mb == nil {
		return bad("Not logged in")
	}
	return nil
}

func (s *session) Create(name string, options *goimap.CreateOptions) error {
	if err := s.needMailbox(); err != nil {
		return err
	}
	if options != nil && len(options.SpecialUse) > 0 {
		return no(goimap.ResponseCode("USEATTR"), "Special-use folders are fixed by the server")
	}
	if err := s.mb.CreateFolder(s.ctx, name); err != nil {
		return s.storeError("create", err)
	}
	return nil
}

func (s *session) Delete(name string) error {
	if err := s.needMailbox(); err != nil {
		return err
	}
	if err := s.mb.DeleteFolder(s.ctx, name); err != nil {
		return s.storeError("delete", err)
	}
	return nil
}

func (s *session) Rename(oldName, newName string, options *goimap.RenameOptions) error {
	if err := s.needMailbox(); err != nil {
		return err
	}
	if err := s.mb.RenameFolder(s.ctx, oldName, newName); err != nil {
		return s.storeError("rename", err)
	}
	return nil
}

func (s *session) Subscribe(name string) error {
	if err := s.needMailbox(); err != nil {
		return err
	}
	if err := s.mb.Subscribe(s.ctx, name); err != nil {
		return s.storeError("subscribe", err)
	}
	return nil
}

func (s *session) Unsubscribe(name string) error {
	if err := s.needMailbox(); err != nil {
		return err
	}
	if err := s.mb.Unsubscribe(s.ctx, name); err != nil {
		return s.storeError("unsubscribe", err)
	}
	return nil
}

func (s *session) Namespace() (*goimap.NamespaceData, error) {
	return &goimap.NamespaceData{
		Personal: []goimap.NamespaceDescriptor{{Prefix: "", Delim: delim}},
	}, nil
}

const delim = '/'

// List is a wrapper over listMailboxes until the session loop calls it
// directly: go-imap has already decoded the names (and drops empty
// patterns) and encodes the answer, so the names stay UTF-8 here.
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *goimap.ListOptions) error {
	if err := s.needMailbox(); err != nil {
		return err
	}
	// go-imap tells LSUB from LIST (SUBSCRIBED) only in the writer.
	lsub := reflect.ValueOf(w).Elem().FieldByName("lsub")
	cmd := &wire.List{Ref: ref, Patterns: patterns, LSUB: lsub.Kind() == reflect.Bool && lsub.Bool()}
	if options != nil && !cmd.LSUB {
		cmd.Options = *options
		cmd.Extended = *options != goimap.ListOptions{}
	}
	if len(patterns) == 0 {
		cmd.Patterns = []string{""}
	}
	if err := checkList(cmd); err != nil {
		return err
	}
	folders, err := s.mb.ListFolders(s.ctx)
	if err != nil {
		return s.storeError("list", err)
	}
	subs, err := s.mb.Subscriptions(s.ctx)
	if err != nil {
		return s.storeError("list", err)
	}
	for _, d := range listMailboxes(folders, subs, cmd, true) {
		if cmd.Options.ReturnStatus != nil && listWantsStatus(&d) {
			if st, err := s.status(d.Mailbox, cmd.Options.ReturnStatus); err == nil {
				d.Status = st
			}
		}
		if err := w.WriteList(&d); err != nil {
			return err
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

func (s *session) Status(name string, options *goimap.StatusOptions) (*goimap.StatusData, error) {
	if err := s.needMailbox(); err != nil {
		return nil, err
	}
	return s.status(name, options)
}

func (s *session) status(name string, options *goimap.StatusOptions) (*goimap.StatusData, error) {
	st, err := s.mb.Status(s.ctx, name)
	if err != nil {
		return nil, s.storeError("status", err)
	}
	d := &goimap.StatusData{Mailbox: name, UIDNext: goimap.UID(st.UIDNext), UIDValidity: st.UIDValidity}
	u32 := func(v uint32) *uint32 { return &v }
	if options.NumMessages {
		d.NumMessages = u32(st.Messages)
	}
	if options.NumRecent {
		d.NumRecent = u32(0)
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
		d.AppendLimit = u32(uint32(s.srv.appendLimit()))
	}
	if options.DeletedStorage {
		var v int64
		if st.Deleted > 0 {
			f, err := s.mb.Select(s.ctx, name, true)
			if err != nil {
				return nil, s.storeError("status", err)
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

func (s *session) Append(mailbox string, r goimap.LiteralReader, options *goimap.AppendOptions) (*goimap.AppendData, error) {
	if err := s.needMailbox(); err != nil {
		return nil, err
	}
	opts := store.AppendOptions{Size: r.Size()}
	if options != nil {
		opts.Flags = flagNames(options.Flags)
		opts.InternalDate = options.Time
	}
	res, err := s.mb.Append(s.ctx, mailbox, r, opts)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, no(goimap.ResponseCodeTryCreate, "No such mailbox")
		}
		return nil, s.storeError("append", err)
	}
	return &goimap.AppendData{UID: goimap.UID(res.UID), UIDValidity: res.UIDValidity}, nil
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
