package imap

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/protocols/imap/compress"
	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// ioBufferSize is the size of each connection's read and write buffers.
const ioBufferSize = 4 << 10

// Error budgets: a client that has not logged in may send this many
// refused commands (BAD) in all before the server says BYE (Dovecot 2.3's
// login process says it at the third; ten leaves room for a confused but
// honest client); a logged-in client this many in a row.
const (
	maxBadBeforeLogin = 10
	maxBadInARow      = 20
)

// conn is one client connection: the command loop and the session state.
// Only the connection's goroutine touches it, except during IDLE, when a
// second goroutine reads the client's DONE.
type conn struct {
	srv *Server
	gc  *gate.Conn
	ip  netip.Addr
	ctx context.Context
	log *slog.Logger
	// preLog is log without the account, for after UNAUTHENTICATE.
	preLog *slog.Logger

	ncMu    sync.Mutex
	netConn net.Conn // the gate's connection, or TLS over it
	tls     *tls.ConnectionState

	br  *bufio.Reader // over connReader, or over the inflater
	bw  *bufio.Writer // over connWriter, or over the deflater
	r   *wire.Reader
	enc *wire.Encoder
	zr  *compress.Reader // non-nil once COMPRESS is active

	compressHeld bool // counted in srv.compressed

	cancel     context.CancelFunc
	readFor    time.Duration // deadline of the next read
	idling     bool          // IDLE: a second goroutine reads; only the first writes
	idLogged   bool          // the client's ID was logged
	bad        int           // refused commands (see maxBad*)
	logout     bool
	authed     bool
	user       string
	mb         *store.Mailbox
	quota      *liveQuota
	sel        *selection
	condstore  bool // CONDSTORE enabled (RFC 7162 3.1)
	qresync    bool // QRESYNC enabled
	utf8       bool // UTF8=ACCEPT enabled (RFC 6855)
	rev2       bool // IMAP4rev2 enabled (RFC 9051): no \Recent, SEARCH as ESEARCH
	okCode     wire.Code
	okText     string
	bodyClosed bool
}

func newConn(s *Server, nc net.Conn) *conn {
	gc := gate.ConnOf(nc)
	c := &conn{srv: s, gc: gc, ip: gc.Client(), netConn: nc}
	c.ctx, c.cancel = context.WithCancel(gc.Context())
	c.log = s.logger().With("proto", "imap", "remote", c.ip.String())
	c.preLog = c.log
	// Small buffers: most connections are idle (IDLE, or a client between
	// polls), and tens of thousands of them must fit. A FETCH of a big
	// body streams past the writer's buffer anyway.
	c.br = bufio.NewReaderSize(connReader{c}, ioBufferSize)
	c.bw = bufio.NewWriterSize(connWriter{c}, ioBufferSize)
	c.enc = wire.NewEncoder(c.bw)
	c.r = wire.NewReader(c.br, s.preLoginLimits(), func() error {
		c.enc.Continue("Ready for literal data")
		return c.enc.Flush()
	})
	c.readFor = s.loginTimeout()
	return c
}

func (c *conn) nc() net.Conn {
	c.ncMu.Lock()
	defer c.ncMu.Unlock()
	return c.netConn
}

// connReader and connWriter follow the current net.Conn across STARTTLS.
// Every read and every write gets a fresh deadline: a client waits at most
// that long for us and we for it, and a long FETCH lasts as long as the
// client keeps reading.
type connReader struct{ c *conn }

func (r connReader) Read(p []byte) (int, error) {
	// Whatever waits to be sent goes before we wait for the client: the
	// answer to a command whose end was buffered (a refused APPEND's
	// literal being skipped) must not wait for the next command.
	if !r.c.idling && r.c.bw.Buffered() > 0 {
		if err := r.c.bw.Flush(); err != nil {
			return 0, err
		}
	}
	nc := r.c.nc()
	nc.SetReadDeadline(time.Now().Add(r.c.readFor))
	return nc.Read(p)
}

type connWriter struct{ c *conn }

func (w connWriter) Write(p []byte) (int, error) {
	nc := w.c.nc()
	nc.SetWriteDeadline(time.Now().Add(w.c.srv.writeTimeout()))
	return nc.Write(p)
}

func (c *conn) usingTLS() bool      { return c.tls != nil }
func (c *conn) tlsOrInsecure() bool { return c.tls != nil || c.srv.AllowInsecureAuth }

func (c *conn) close() {
	c.unselect()
	if c.compressHeld {
		c.srv.compressed.release(c.gc.Network())
	}
	c.nc().Close()
	c.cancel()
}

func (c *conn) unselect() {
	if c.sel != nil {
		c.sel.close()
		c.sel = nil
	}
}

// serve runs the session until LOGOUT, a fatal error, a limit or the
// server's shutdown.
func (c *conn) serve() {
	defer c.close()
	if tc, ok := c.nc().(*tls.Conn); ok {
		if !c.handshake(tc) {
			return
		}
	}
	c.enc.Status("*", goimap.StatusResponseTypeOK, wire.CodeCapability(c.capabilities()), "vmaild ready.")
	for !c.logout {
		// Answer pipelined commands in one write.
		if c.br.Buffered() == 0 {
			if c.enc.Flush() != nil {
				return
			}
		}
		if c.authed {
			c.readFor = c.srv.idleTimeout()
		} else {
			c.readFor = c.srv.loginTimeout()
		}
		if c.zr != nil {
			c.zr.Next()
		}
		c.gc.Idle() // Shutdown may end the wait
		cmd, err := c.r.ReadCommand()
		if err != nil {
			if !c.readError(err) {
				c.enc.Flush()
				return
			}
			continue
		}
		if !c.gc.Busy() {
			c.enc.Status("*", goimap.StatusResponseTypeBye, "", gate.Shutdown.Text())
			c.enc.Flush()
			return
		}
		c.readFor = c.srv.commandTimeout()
		c.run(cmd)
		if c.authed {
			c.gc.Authenticated()
		}
		if c.enc.Err() != nil {
			return
		}
	}
	c.enc.Flush()
}

// readError answers a command the reader refused and reports whether the
// session goes on.
func (c *conn) readError(err error) bool {
	var werr *wire.Error
	var ne net.Error
	switch {
	case errors.As(err, &werr):
		if werr.Fatal {
			c.enc.Status("*", goimap.StatusResponseTypeBye, wire.Code(werr.Code), werr.Text)
			return false
		}
		c.enc.Status(werr.Tag, werr.Type, wire.Code(werr.Code), werr.Text)
		if werr.Type == goimap.StatusResponseTypeBad {
			return c.countBad()
		}
		return true
	case errors.Is(err, compress.ErrLimit):
		c.log.Info("imap compressed stream over its limits", "err", err)
		c.enc.Status("*", goimap.StatusResponseTypeBye, "LIMIT", "Compressed data inflates too much")
		return false
	case errors.As(err, &ne) && ne.Timeout():
		switch r := c.gc.Expired(); r {
		case "":
			c.enc.Status("*", goimap.StatusResponseTypeBye, "", "Autologout: disconnected for inactivity")
		default: // a gate limit or Shutdown
			c.enc.Status("*", goimap.StatusResponseTypeBye, "", r.Text())
		}
		return false
	}
	return false // EOF or a broken connection
}

// countBad counts a refused command against the error budget and reports
// whether the session goes on.
func (c *conn) countBad() bool {
	c.bad++
	limit := maxBadInARow
	if !c.authed {
		limit = maxBadBeforeLogin
	}
	if c.bad >= limit {
		c.log.Info("imap too many bad commands")
		c.enc.Status("*", goimap.StatusResponseTypeBye, "", "Too many invalid IMAP commands.")
		return false
	}
	return true
}

func (c *conn) handshake(tc *tls.Conn) bool {
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.handshakeTimeout())
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.log.Debug("imap TLS handshake", "err", err)
		return false
	}
	cs := tc.ConnectionState()
	c.tls = &cs
	return true
}

// startTLS switches the connection to TLS after the tagged OK. Plaintext
// the client pipelined behind STARTTLS is dropped: it would otherwise be
// taken as sent under TLS (CVE-2011-0411's class).
func (c *conn) startTLS() bool {
	if err := c.enc.Flush(); err != nil {
		return false
	}
	c.br.Reset(connReader{c})
	c.readFor = c.srv.handshakeTimeout()
	tc := tls.Server(c.nc(), c.srv.tlsConfig)
	c.ncMu.Lock()
	c.netConn = tc
	c.ncMu.Unlock()
	return c.handshake(tc)
}

// startCompress puts DEFLATE under both halves after the tagged OK.
func (c *conn) startCompress() error {
	if err := c.enc.Flush(); err != nil {
		return err
	}
	zw, err := compress.NewWriter(connWriter{c}, compress.DefaultLevel)
	if err != nil {
		return err
	}
	// What the client sent after COMPRESS is already compressed: hand the
	// inflater what the plaintext buffer holds first.
	var pending []byte
	if n := c.br.Buffered(); n > 0 {
		pending, _ = c.br.Peek(n)
		pending = append([]byte(nil), pending...)
	}
	c.zr = compress.NewReader(io.MultiReader(bytes.NewReader(pending), connReader{c}), compress.Limits{})
	c.br = bufio.NewReaderSize(c.zr, ioBufferSize)
	c.bw = bufio.NewWriterSize(zw, ioBufferSize)
	c.r.Reset(c.br)
	c.enc.Reset(c.bw)
	return nil
}
