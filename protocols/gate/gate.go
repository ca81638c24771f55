package gate

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrClosed is returned by Listen, and by Shutdown a second time, once the
// gate has been shut down or closed.
var ErrClosed = errors.New("gate: closed")

// refusalTimeout bounds writing a refusal and closing.
const refusalTimeout = 5 * time.Second

// Gate is the connection gate. One Gate is shared by every listener of the
// process, so that its caps count a client across all of them. Set the
// fields, then wrap each listener with Listen; the zero value is a gate
// with DefaultConfig's limits. The fields must not change after the first
// Listen.
type Gate struct {
	Limits Config
	// Logger receives a line per refusal and per connection ended by a
	// limit; nil discards.
	Logger *slog.Logger
	// Refused is told of every connection refused at connect time or
	// ended by a limit (shutdown excepted), with the listener's name; it
	// feeds metrics and must not block. Nil: nobody is told.
	Refused func(listener string, r Reason)

	initOnce sync.Once
	cfg      Config // Limits, effective
	exempt   []netip.Prefix
	grace    time.Duration
	log      *slog.Logger
	ctx      context.Context // parent of every connection's context
	cancel   context.CancelFunc

	mu        sync.Mutex
	closing   bool
	listeners map[*Listener]struct{}
	conns     map[*Conn]struct{}
	perNet    map[netip.Prefix]int
	unauth    int
	empty     chan struct{} // closed when conns is empty while closing
}

func (g *Gate) init() {
	g.initOnce.Do(func() {
		g.cfg = g.Limits.effective()
		g.exempt = g.cfg.exempt()
		if g.grace == 0 {
			g.grace = goodbyeGrace
		}
		g.log = g.Logger
		if g.log == nil {
			g.log = slog.New(slog.DiscardHandler)
		}
		g.ctx, g.cancel = context.WithCancel(context.Background())
		g.listeners = make(map[*Listener]struct{})
		g.conns = make(map[*Conn]struct{})
		g.perNet = make(map[netip.Prefix]int)
		g.empty = make(chan struct{})
	})
}

// CommandDeadline is the configured per-command deadline; zero: none.
func (g *Gate) CommandDeadline() time.Duration {
	g.init()
	return g.cfg.CommandDeadline
}

// Closing reports whether Shutdown or Close has been called: a server
// whose Serve returns then was stopped, not failed.
func (g *Gate) Closing() bool {
	g.init()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closing
}

// Service describes a listener to the gate.
type Service struct {
	// Name names the listener in logs and metrics ("smtp", "imaps").
	Name string
	// Refusal returns the line, CRLF included, that tells a client refused
	// at connect time why, in the protocol's words; text is the reason's.
	// Nil closes refused connections without a word, as an implicit TLS
	// listener should: answering would cost a handshake per connection,
	// which is what a flood wants us to spend.
	Refusal func(text string) string
	// NoLogin marks a listener whose clients do not log in (the MTA,
	// LMTP): the pre-auth lifetime and the unauthenticated cap do not
	// apply to them; the other limits do.
	NoLogin bool
}

// Listen wraps l: its Accept returns only connections the gate admits, as
// *Conn. Shutdown and Close close l.
func (g *Gate) Listen(l net.Listener, svc Service) (*Listener, error) {
	g.init()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		l.Close()
		return nil, ErrClosed
	}
	gl := &Listener{Listener: l, g: g, svc: svc}
	g.listeners[gl] = struct{}{}
	return gl, nil
}

// Listener is a listener behind the gate.
type Listener struct {
	net.Listener
	g   *Gate
	svc Service
}

// Accept waits for the next admitted connection; refused ones are answered
// and closed on the way.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c, reason := l.g.admit(raw, &l.svc)
		if c != nil {
			return c, nil
		}
		go l.refuse(raw, reason)
	}
}

// Close stops this listener only.
func (l *Listener) Close() error {
	l.g.mu.Lock()
	delete(l.g.listeners, l)
	l.g.mu.Unlock()
	return l.Listener.Close()
}

// admit counts raw in, or says which limit refuses it ("" while closing).
func (g *Gate) admit(raw net.Conn, svc *Service) (*Conn, Reason) {
	client := ClientAddr(raw.RemoteAddr())
	network := g.cfg.Networks.Of(client)
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closing:
		return nil, ""
	case network.IsValid() && g.cfg.MaxPerNetwork > 0 && g.perNet[network] >= g.cfg.MaxPerNetwork && !g.exempted(client):
		return nil, LimitNetwork
	case !svc.NoLogin && g.cfg.MaxUnauthenticated > 0 && g.unauth >= g.cfg.MaxUnauthenticated:
		return nil, LimitUnauthenticated
	case g.cfg.MaxConnections > 0 && len(g.conns) >= g.cfg.MaxConnections:
		return nil, LimitTotal
	}
	c := newConn(g, raw, svc, client, network)
	g.conns[c] = struct{}{}
	if network.IsValid() {
		g.perNet[network]++
	}
	if c.counted {
		g.unauth++
	}
	return c, ""
}

func (g *Gate) exempted(client netip.Addr) bool {
	for _, p := range g.exempt {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// refuse tells a refused client why, briefly, and closes it.
func (l *Listener) refuse(raw net.Conn, reason Reason) {
	defer raw.Close()
	if reason == "" {
		return // shutting down
	}
	g := l.g
	client := ClientAddr(raw.RemoteAddr())
	g.log.Warn("connection refused", "listener", l.svc.Name, "client", addrString(client, raw),
		"network", g.cfg.Networks.Of(client).String(), "limit", string(reason), "max", g.max(reason))
	if g.Refused != nil {
		g.Refused(l.svc.Name, reason)
	}
	if l.svc.Refusal == nil {
		return
	}
	raw.SetDeadline(time.Now().Add(refusalTimeout))
	raw.Write([]byte(l.svc.Refusal(reason.Text())))
}

// max is the configured value of a count limit, for logs.
func (g *Gate) max(r Reason) int {
	switch r {
	case LimitNetwork:
		return g.cfg.MaxPerNetwork
	case LimitTotal:
		return g.cfg.MaxConnections
	case LimitUnauthenticated:
		return g.cfg.MaxUnauthenticated
	}
	return 0
}

func addrString(client netip.Addr, c net.Conn) string {
	if client.IsValid() {
		return client.String()
	}
	if a := c.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		return a.String()
	}
	return "local"
}

// forget uncounts a released connection.
func (g *Gate) forget(c *Conn, wasCounted bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.conns[c]; !ok {
		return
	}
	delete(g.conns, c)
	if c.network.IsValid() {
		if g.perNet[c.network] <= 1 {
			delete(g.perNet, c.network)
		} else {
			g.perNet[c.network]--
		}
	}
	if wasCounted {
		g.unauth--
	}
	if g.closing && len(g.conns) == 0 {
		closeOnce(g.empty)
	}
}

// unauthenticated moves a connection back into the unauthenticated
// count, if there is room.
func (g *Gate) unauthenticated() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cfg.MaxUnauthenticated > 0 && g.unauth >= g.cfg.MaxUnauthenticated {
		return false
	}
	g.unauth++
	return true
}

// authenticated moves a connection out of the unauthenticated count.
func (g *Gate) authenticated() {
	g.mu.Lock()
	g.unauth--
	g.mu.Unlock()
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// stopListening marks the gate closing, closes its listeners and returns
// the connections open now; it reports false if already closing.
func (g *Gate) stopListening() ([]*Conn, bool, error) {
	g.init()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return nil, false, nil
	}
	g.closing = true
	var err error
	for l := range g.listeners {
		if cerr := l.Listener.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) && err == nil {
			err = cerr
		}
	}
	g.listeners = map[*Listener]struct{}{}
	conns := make([]*Conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	if len(g.conns) == 0 {
		closeOnce(g.empty)
	}
	return conns, true, err
}

// Shutdown stops every listener of the gate, ends idle connections (each
// protocol says goodbye in its own words when its read is cut short), lets
// work in flight finish (a connection is ended once it is idle again) and
// returns when every connection has been closed. When ctx ends first, it
// closes the rest as Close does, waits for their protocols to let go of
// them, and returns ctx's error. A second Shutdown returns ErrClosed.
func (g *Gate) Shutdown(ctx context.Context) error {
	conns, first, err := g.stopListening()
	if !first {
		return ErrClosed
	}
	for _, c := range conns {
		c.stop()
	}
	select {
	case <-g.empty:
		return err
	case <-ctx.Done():
		g.closeConns()
		<-g.empty
		return ctx.Err()
	}
}

// Close stops every listener and closes every connection at once,
// cancelling their contexts, and returns when the protocols have let go of
// them (which they do as soon as their reads fail).
func (g *Gate) Close() error {
	_, _, err := g.stopListening()
	g.closeConns()
	<-g.empty
	return err
}

func (g *Gate) closeConns() {
	g.mu.Lock()
	conns := make([]*Conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	g.cancel()
	for _, c := range conns {
		c.closeSocket()
	}
}

// ListenerStatus is one listener as Status reports it.
type ListenerStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	// Connections are the admitted connections open now, Authenticated
	// those among them whose client logged in.
	Connections   int `json:"connections"`
	Authenticated int `json:"authenticated"`
}

// Status is a snapshot of the gate for an admin: each listener with its
// open connections, sorted by name, and the gate's totals.
type Status struct {
	Listeners       []ListenerStatus `json:"listeners"`
	Connections     int              `json:"connections"`
	Unauthenticated int              `json:"unauthenticated"`
	Closing         bool             `json:"closing"`
}

// Status reports the listeners and their connections.
func (g *Gate) Status() Status {
	g.init()
	g.mu.Lock()
	st := Status{Connections: len(g.conns), Unauthenticated: g.unauth, Closing: g.closing}
	byName := make(map[string]*ListenerStatus, len(g.listeners))
	for l := range g.listeners {
		st.Listeners = append(st.Listeners, ListenerStatus{Name: l.svc.Name, Address: l.Addr().String()})
	}
	conns := make([]*Conn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	slices.SortFunc(st.Listeners, func(a, b ListenerStatus) int { return strings.Compare(a.Name, b.Name) })
	for i := range st.Listeners {
		byName[st.Listeners[i].Name] = &st.Listeners[i]
	}
	// A Conn's lock is taken without the gate's, as everywhere else.
	for _, c := range conns {
		ls := byName[c.svc.Name]
		if ls == nil {
			continue // its listener was closed
		}
		ls.Connections++
		c.mu.Lock()
		if c.authed {
			ls.Authenticated++
		}
		c.mu.Unlock()
	}
	return st
}
