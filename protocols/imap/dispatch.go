package imap

import (
	"errors"
	"strconv"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// state is where a command may run (RFC 9051 section 3).
type state int

const (
	anyState state = iota
	notAuthenticated
	authenticated // or selected
	selected
)

type handler struct {
	need state
	run  func(c *conn, cmd *wire.Command) error
	// noExpunge: after this command untagged EXPUNGE may not be sent
	// (RFC 9051 7.5.1: FETCH, STORE and SEARCH, and SORT and THREAD by
	// RFC 5256), so changes of others wait for the next command.
	noExpunge bool
}

// commands is the dispatch table: every command vmaild serves, by the
// upper-case name wire.Reader gives ("UID FETCH" style).
var commands = map[string]handler{
	"CAPABILITY":     {anyState, (*conn).cmdCapability, false},
	"NOOP":           {anyState, (*conn).cmdNoop, false},
	"LOGOUT":         {anyState, (*conn).cmdLogout, false},
	"ID":             {anyState, (*conn).cmdID, false},
	"STARTTLS":       {notAuthenticated, (*conn).cmdStartTLS, false},
	"LOGIN":          {notAuthenticated, (*conn).cmdLogin, false},
	"AUTHENTICATE":   {notAuthenticated, (*conn).cmdAuthenticate, false},
	"ENABLE":         {authenticated, (*conn).cmdEnable, false},
	"COMPRESS":       {authenticated, (*conn).cmdCompress, false},
	"UNAUTHENTICATE": {authenticated, (*conn).cmdUnauthenticate, false},
	"NAMESPACE":      {authenticated, (*conn).cmdNamespace, false},
	"CREATE":         {authenticated, (*conn).cmdCreate, false},
	"DELETE":         {authenticated, (*conn).cmdDelete, false},
	"RENAME":         {authenticated, (*conn).cmdRename, false},
	"SUBSCRIBE":      {authenticated, (*conn).cmdSubscribe, false},
	"UNSUBSCRIBE":    {authenticated, (*conn).cmdUnsubscribe, false},
	"LIST":           {authenticated, (*conn).cmdList, false},
	"LSUB":           {authenticated, (*conn).cmdList, false},
	"STATUS":         {authenticated, (*conn).cmdStatus, false},
	"APPEND":         {authenticated, (*conn).cmdAppend, false},
	"GETQUOTAROOT":   {authenticated, (*conn).cmdGetQuotaRoot, false},
	"GETQUOTA":       {authenticated, (*conn).cmdGetQuota, false},
	"SETQUOTA":       {authenticated, (*conn).cmdSetQuota, false},
	"SELECT":         {authenticated, (*conn).cmdSelect, false},
	"EXAMINE":        {authenticated, (*conn).cmdSelect, false},
	"IDLE":           {authenticated, (*conn).cmdIdle, false},
	"CHECK":          {selected, (*conn).cmdNoop, false},
	"CLOSE":          {selected, (*conn).cmdClose, false},
	"UNSELECT":       {selected, (*conn).cmdUnselect, false},
	"EXPUNGE":        {selected, (*conn).cmdExpunge, false},
	"UID EXPUNGE":    {selected, (*conn).cmdExpunge, false},
	"FETCH":          {selected, (*conn).cmdFetch, true},
	"UID FETCH":      {selected, (*conn).cmdFetch, false},
	"STORE":          {selected, (*conn).cmdStore, true},
	"UID STORE":      {selected, (*conn).cmdStore, false},
	"COPY":           {selected, (*conn).cmdCopy, false},
	"UID COPY":       {selected, (*conn).cmdCopy, false},
	"MOVE":           {selected, (*conn).cmdCopy, false},
	"UID MOVE":       {selected, (*conn).cmdCopy, false},
	"SEARCH":         {selected, (*conn).cmdSearch, true},
	"UID SEARCH":     {selected, (*conn).cmdSearch, false},
	"SORT":           {selected, (*conn).cmdSort, true},
	"UID SORT":       {selected, (*conn).cmdSort, false},
	"THREAD":         {selected, (*conn).cmdThread, true},
	"UID THREAD":     {selected, (*conn).cmdThread, false},
}

// run executes one command: state check, handler, pending changes of the
// selected folder, tagged completion.
func (c *conn) run(cmd *wire.Command) {
	h, ok := commands[cmd.Name]
	if !ok {
		c.enc.Status(cmd.Tag, goimap.StatusResponseTypeBad, "CLIENTBUG", "Unknown command "+cmd.Name)
		if !c.countBad() {
			c.logout = true
		}
		return
	}
	var err error
	switch {
	case h.need == notAuthenticated && c.authed:
		err = bad("Already logged in")
	case h.need >= authenticated && !c.authed:
		err = bad("Not logged in")
	case h.need == selected && c.sel == nil:
		err = errNoSelection
	}
	c.okCode, c.okText = "", ""
	if err == nil {
		err = h.run(c, cmd)
	}
	if c.logout && err == nil {
		c.enc.Status(cmd.Tag, goimap.StatusResponseTypeOK, "", "Logout completed.")
		return
	}
	if c.sel != nil && c.enc.Err() == nil && !errors.Is(err, errConnDone) {
		if perr := c.poll(!h.noExpunge); perr != nil {
			c.logout = true
			return
		}
		c.announceKeywords()
	}
	var ie *goimap.Error
	switch {
	case err == nil:
		c.resetBad()
		text := c.okText
		if text == "" {
			text = cmd.Name + " completed"
		}
		c.enc.Status(cmd.Tag, goimap.StatusResponseTypeOK, c.okCode, text)
	case errors.Is(err, errConnDone):
		c.logout = true
	case errors.Is(err, errAnswered):
		c.resetBad()
	case errors.As(err, &ie):
		c.enc.Status(cmd.Tag, ie.Type, wire.Code(ie.Code), ie.Text)
		if ie.Type == goimap.StatusResponseTypeBad && !c.countBad() {
			c.logout = true
		}
	default:
		c.log.Error("imap "+cmd.Name, "err", err)
		c.enc.Status(cmd.Tag, goimap.StatusResponseTypeNo, "SERVERBUG", "Internal error")
	}
}

// resetBad: a command that succeeds clears a logged-in client's error
// budget, which counts refusals in a row. Before login it is a total, as
// in Dovecot's login process: a NOOP between bad commands must not let a
// client probe forever.
func (c *conn) resetBad() {
	if c.authed {
		c.bad = 0
	}
}

// errConnDone ends the session without a tagged answer (the connection
// is gone, or a BYE was sent).
var errConnDone = errors.New("imap: connection done")

// errAnswered says the handler sent the tagged completion itself
// (STARTTLS and COMPRESS, whose OK must precede the switch).
var errAnswered = errors.New("imap: answered")

// complete sets the tagged OK's response code and text.
func (c *conn) complete(code wire.Code, text string) { c.okCode, c.okText = code, text }

// capabilities is the CAPABILITY list in the session's state.
func (c *conn) capabilities() []goimap.Cap {
	caps := []goimap.Cap{goimap.CapIMAP4rev1, goimap.CapIMAP4rev2, goimap.CapLiteralPlus, goimap.CapSASLIR,
		goimap.CapID, goimap.CapEnable, goimap.CapIdle}
	if !c.authed {
		if c.srv.tlsConfig != nil && c.tls == nil && c.zr == nil {
			caps = append(caps, goimap.CapStartTLS)
		}
		if !c.tlsOrInsecure() {
			return append(caps, goimap.CapLoginDisabled)
		}
		for _, m := range authMechanisms(c.tlsOrInsecure()) {
			caps = append(caps, goimap.Cap("AUTH="+m))
		}
		return caps
	}
	caps = append(caps,
		goimap.CapNamespace, goimap.CapUnselect, goimap.CapUIDPlus, goimap.CapChildren,
		goimap.CapSpecialUse, goimap.CapCreateSpecialUse, goimap.CapMove,
		goimap.CapESearch, goimap.CapSearchRes, goimap.CapSort, "SORT=DISPLAY", goimap.CapESort,
		"THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES",
		goimap.CapCondStore, goimap.CapQResync, goimap.CapBinary,
		goimap.CapListExtended, goimap.CapListStatus, goimap.CapStatusSize,
		goimap.CapMultiAppend, goimap.Cap("APPENDLIMIT="+strconv.FormatInt(c.srv.appendLimit(), 10)),
		"COMPRESS=DEFLATE", "UTF8=ACCEPT", goimap.CapUnauthenticate)
	if c.srv.Quotas != nil {
		caps = append(caps, goimap.CapQuota, "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE")
	}
	return caps
}
