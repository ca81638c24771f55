package imap

import (
	"bufio"
	"context"
	"errors"
	"net"
	"testing"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// listLoop is the smallest session loop over wire.Reader and wire.Encoder
// that imaptest's mailbox-name scripts need (LOGIN, CAPABILITY, ENABLE,
// CREATE, DELETE, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS, SELECT), so
// that list.go is tested through the parser the server will use rather
// than go-imap's, which decodes names on its own. It stands in for the
// real loop in tests only.
type listLoop struct {
	store *store.Store
	mb    *store.Mailbox
	utf8  bool
}

// serveListLoop accepts connections on a loopback port until the test
// ends and returns the address.
func serveListLoop(t testing.TB, st *store.Store) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				(&listLoop{store: st}).serve(c)
			}()
		}
	}()
	return l.Addr().String()
}

var listLoopCaps = []goimap.Cap{"IMAP4rev1", "LITERAL+", "ENABLE", "UTF8=ACCEPT", "LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE"}

func (l *listLoop) serve(c net.Conn) {
	ctx := context.Background()
	enc := wire.NewEncoder(bufio.NewWriter(c))
	r := wire.NewReader(bufio.NewReader(c), wire.Limits{}, func() error { enc.Continue(""); return enc.Flush() })
	enc.Status("*", goimap.StatusResponseTypeOK, wire.CodeCapability(listLoopCaps), "ready")
	enc.Flush()
	for {
		cmd, err := r.ReadCommand()
		var refused *wire.Error
		switch {
		case errors.As(err, &refused):
			enc.Status(refused.Tag, refused.Type, wire.Code(refused.Code), refused.Text)
			if refused.Fatal {
				enc.Flush()
				return
			}
		case err != nil:
			return
		default:
			if err := l.dispatch(ctx, enc, cmd); err != nil {
				var ie *goimap.Error
				if !errors.As(err, &ie) {
					ie = &goimap.Error{Type: goimap.StatusResponseTypeNo, Code: goimap.ResponseCodeServerBug, Text: err.Error()}
				}
				enc.Status(cmd.Tag, ie.Type, wire.Code(ie.Code), ie.Text)
			} else {
				enc.Status(cmd.Tag, goimap.StatusResponseTypeOK, "", cmd.Name+" completed")
			}
			if cmd.Name == "LOGOUT" {
				enc.Flush()
				return
			}
		}
		if enc.Flush() != nil {
			return
		}
	}
}

func (l *listLoop) dispatch(ctx context.Context, enc *wire.Encoder, cmd *wire.Command) error {
	storeErr := func(err error) error {
		switch {
		case err == nil:
			return nil
		case errors.Is(err, store.ErrNotFound):
			return no(goimap.ResponseCodeNonExistent, "No such mailbox")
		case errors.Is(err, store.ErrExists):
			return no(goimap.ResponseCodeAlreadyExists, "Mailbox already exists")
		case errors.Is(err, store.ErrInvalid):
			return no(goimap.ResponseCodeCannot, "Not possible")
		}
		return err
	}
	name := func(arg string) (string, error) { return mailboxName(arg, l.utf8) }
	if l.mb == nil && cmd.Name != "LOGIN" && cmd.Name != "CAPABILITY" && cmd.Name != "LOGOUT" && cmd.Name != "NOOP" {
		return bad("Log in first")
	}
	switch a := cmd.Args.(type) {
	case *wire.Login:
		mb, err := l.store.OpenMailbox(ctx, store.Account{Address: a.Username})
		l.mb = mb
		return err
	case *wire.Enable:
		for _, c := range a.Caps {
			if c == "UTF8=ACCEPT" {
				l.utf8 = true
				enc.Enabled([]goimap.Cap{c})
			}
		}
	case *wire.Create:
		n, err := name(a.Mailbox)
		if err != nil {
			return err
		}
		return storeErr(l.mb.CreateFolder(ctx, n))
	case *wire.MailboxArg:
		n, err := name(a.Mailbox)
		if err != nil {
			return err
		}
		switch cmd.Name {
		case "DELETE":
			return storeErr(l.mb.DeleteFolder(ctx, n))
		case "SUBSCRIBE":
			return storeErr(l.mb.Subscribe(ctx, n))
		case "UNSUBSCRIBE":
			return storeErr(l.mb.Unsubscribe(ctx, n))
		}
		return bad("unexpected " + cmd.Name)
	case *wire.Select:
		n, err := name(a.Mailbox)
		if err != nil {
			return err
		}
		f, err := l.mb.Select(ctx, n, a.ReadOnly)
		if err != nil {
			return storeErr(err)
		}
		enc.Exists(uint32(len(f.Messages())))
		f.Close()
	case *wire.Status:
		n, err := name(a.Mailbox)
		if err != nil {
			return err
		}
		return storeErr(l.status(ctx, enc, n, &a.Options))
	case *wire.List:
		if err := checkList(a); err != nil {
			return err
		}
		folders, err := l.mb.ListFolders(ctx)
		if err != nil {
			return err
		}
		subs, err := l.mb.Subscriptions(ctx)
		if err != nil {
			return err
		}
		for _, d := range listMailboxes(folders, subs, a, l.utf8) {
			enc.List(&d, a.LSUB)
			if a.Options.ReturnStatus != nil && listWantsStatus(&d) {
				n, _ := name(d.Mailbox)
				_ = l.status(ctx, enc, n, a.Options.ReturnStatus)
			}
		}
	default:
		switch cmd.Name {
		case "CAPABILITY":
			enc.Capability(listLoopCaps)
		case "NOOP", "LOGOUT":
		default:
			return bad("not in this test loop: " + cmd.Name)
		}
	}
	return nil
}

func (l *listLoop) status(ctx context.Context, enc *wire.Encoder, n string, o *goimap.StatusOptions) error {
	st, err := l.mb.Status(ctx, n)
	if err != nil {
		return err
	}
	d := &goimap.StatusData{Mailbox: clientName(n, l.utf8)}
	u32 := func(v uint32) *uint32 { return &v }
	if o.NumMessages {
		d.NumMessages = u32(st.Messages)
	}
	if o.NumUnseen {
		d.NumUnseen = u32(st.Unseen)
	}
	if o.UIDNext {
		d.UIDNext = goimap.UID(st.UIDNext)
	}
	if o.UIDValidity {
		d.UIDValidity = st.UIDValidity
	}
	enc.StatusData(d)
	return nil
}
