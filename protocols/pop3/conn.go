package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmaild/vmaild/protocols/gate"
)

const (
	// maxCommandLine is RFC 2449's limit for a command line, CRLF included.
	maxCommandLine = 255
	// maxAuthLine bounds a SASL response line. RFC 5034 lets them exceed
	// the command limit; 12288 octets is what RFC 4954 asks SMTP servers
	// to take, far beyond any PLAIN or LOGIN response we accept.
	maxAuthLine = 12288
	// maxDiscard is how much of an overlong line is read and thrown away
	// before the client is judged hostile and disconnected.
	maxDiscard = 64 * 1024
)

var (
	errLineTooLong  = errors.New("line too long")
	errLineTooLong2 = errors.New("line far too long")
	errBareLF       = errors.New("line not ended by CRLF")
	errNUL          = errors.New("NUL in line")
	errCR           = errors.New("CR inside line")
)

// conn is one client connection and its POP3 session.
type conn struct {
	srv *Server
	gc  *gate.Conn
	ip  netip.Addr
	log *slog.Logger

	// ctx ends when the session ends or the server closes; backend calls
	// get a child that also ends when the client disconnects.
	ctx    context.Context
	cancel context.CancelFunc

	ncMu    sync.Mutex
	netConn net.Conn // swapped for a *tls.Conn by STLS
	br      *bufio.Reader
	bw      *bufio.Writer
	line    []byte

	tls     *tls.ConnectionState
	callCtx context.Context // the context of the backend call under way

	// session state
	state   state
	user    string // USER given, waiting for PASS
	badCmds int
	quit    bool // close after flushing
	md      Maildrop
	account string // locked in srv.locks when non-empty
	msgs    []msgState
}

type state int

const (
	authorization state = iota
	transaction
)

type msgState struct {
	uid     string // as the Maildrop knows it
	wireUID string // as UIDL shows it
	size    int64
	deleted bool
}

// newConn serves nc, which is the gate's connection or TLS over it.
func newConn(s *Server, nc net.Conn) *conn {
	gc := gate.ConnOf(nc)
	c := &conn{srv: s, gc: gc, ip: gc.Client(), netConn: nc}
	c.ctx, c.cancel = context.WithCancel(gc.Context())
	c.log = s.logger().With("proto", "pop3", "remote", nc.RemoteAddr().String())
	c.br = bufio.NewReaderSize(connReader{c}, 4096)
	c.bw = bufio.NewWriterSize(connWriter{c}, 32*1024)
	return c
}

func (c *conn) nc() net.Conn {
	c.ncMu.Lock()
	defer c.ncMu.Unlock()
	return c.netConn
}

// connReader and connWriter follow the current net.Conn across STLS, so the
// buffers never need replacing; every write gets a fresh deadline, so a long
// RETR lives as long as the client keeps reading.
type connReader struct{ c *conn }

func (r connReader) Read(p []byte) (int, error) { return r.c.nc().Read(p) }

type connWriter struct{ c *conn }

func (w connWriter) Write(p []byte) (int, error) {
	nc := w.c.nc()
	nc.SetWriteDeadline(time.Now().Add(w.c.srv.writeTimeout()))
	return nc.Write(p)
}

// readLine reads one CRLF-terminated line of at most max octets (CRLF
// included) and returns it without the CRLF. The returned slice is valid
// until the next call.
func (c *conn) readLine(max int) ([]byte, error) {
	c.nc().SetReadDeadline(time.Now().Add(c.srv.idleTimeout()))
	c.line = c.line[:0]
	tooLong, discarded := false, 0
	for {
		frag, err := c.br.ReadSlice('\n')
		if !tooLong && len(c.line)+len(frag) > max {
			tooLong = true
			c.line = c.line[:0]
		}
		if tooLong {
			if discarded += len(frag); discarded > maxDiscard {
				return nil, errLineTooLong2
			}
		} else {
			c.line = append(c.line, frag...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return nil, err
		}
		break
	}
	if tooLong {
		return nil, errLineTooLong
	}
	l := c.line
	if len(l) < 2 || l[len(l)-2] != '\r' {
		return nil, errBareLF
	}
	l = l[:len(l)-2]
	if bytes.IndexByte(l, 0) >= 0 {
		return nil, errNUL
	}
	if bytes.IndexByte(l, '\r') >= 0 {
		return nil, errCR
	}
	return l, nil
}

// background runs a backend call with a context that is cancelled if the
// client disconnects meanwhile. Nothing else reads the connection during the
// call, so a watcher may block in Peek; pipelined commands it sees simply
// stay buffered. Afterwards an expired read deadline unblocks the watcher.
func (c *conn) background(fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	var finished atomic.Bool
	watcherDone := make(chan struct{})
	nc := c.nc()
	nc.SetReadDeadline(time.Time{})
	go func() {
		defer close(watcherDone)
		if _, err := c.br.Peek(1); err != nil && !finished.Load() {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				cancel()
			}
		}
	}()
	prev := c.callCtx
	c.callCtx = ctx
	err := fn(ctx)
	c.callCtx = prev
	finished.Store(true)
	nc.SetReadDeadline(time.Unix(1, 0))
	<-watcherDone
	nc.SetReadDeadline(time.Time{})
	return err
}

// reply sends one response line; the CRLF is added.
func (c *conn) reply(s string) {
	c.bw.WriteString(s)
	c.bw.WriteString("\r\n")
}

// bad answers a command the client should not have sent, and closes the
// session once there were too many of them.
func (c *conn) bad(s string) {
	c.badCmds++
	if c.badCmds >= c.srv.maxBadCommands() {
		c.log.Info("pop3 too many bad commands", "last", s)
		c.reply("-ERR too many bad commands, closing connection")
		c.quit = true
		return
	}
	c.reply(s)
}

func (c *conn) connInfo() ConnInfo {
	nc := c.nc()
	return ConnInfo{RemoteAddr: nc.RemoteAddr(), LocalAddr: nc.LocalAddr(), IP: c.ip, TLS: c.tls}
}

func (c *conn) authAllowed() bool { return c.tls != nil || c.srv.AllowInsecureAuth }

func (c *conn) close() {
	if c.md != nil {
		if err := c.md.Close(); err != nil {
			c.log.Warn("pop3 maildrop close", "err", err)
		}
		c.md = nil
	}
	if c.account != "" {
		c.srv.locks.unlock(c.account)
		c.account = ""
	}
	c.nc().Close()
	c.cancel()
}

// serve runs the session until QUIT, a fatal error or the server closes.
func (c *conn) serve() {
	defer c.close()
	if tc, ok := c.nc().(*tls.Conn); ok {
		if !c.handshake(tc) {
			return
		}
	}
	c.log.Debug("pop3 connect", "tls", c.tls != nil)
	c.reply("+OK " + c.srv.hostname() + " POP3 server ready")
	for !c.quit {
		// Answer pipelined commands in one write: flush only when the
		// client has nothing more queued.
		if c.br.Buffered() == 0 {
			if c.bw.Flush() != nil {
				return
			}
		}
		c.gc.Idle() // Shutdown may end the wait
		line, err := c.readLine(maxCommandLine)
		if err != nil {
			if !c.lineError(err) {
				return
			}
			continue
		}
		if !c.gc.Busy() {
			// Shutting down: a command sent meanwhile is not started.
			c.reply("-ERR [SYS/TEMP] " + gate.Shutdown.Text())
			c.bw.Flush()
			return
		}
		c.command(line)
		if c.state == transaction {
			c.gc.Authenticated()
		}
	}
	c.bw.Flush()
}

// lineError answers a bad line and reports whether the session goes on.
func (c *conn) lineError(err error) bool {
	var ne net.Error
	switch {
	case errors.Is(err, errLineTooLong):
		c.bad("-ERR line too long (commands: at most 255 octets with CRLF)")
	case errors.Is(err, errLineTooLong2):
		c.reply("-ERR line far too long, closing connection")
		c.quit = true
	case errors.Is(err, errBareLF):
		c.bad("-ERR line must end with CRLF")
	case errors.Is(err, errNUL):
		c.bad("-ERR NUL octet in command")
	case errors.Is(err, errCR):
		c.bad("-ERR CR inside command line")
	case errors.As(err, &ne) && ne.Timeout():
		// RFC 1939's autologout, a gate limit or Shutdown: close
		// without entering UPDATE.
		switch r := c.gc.Expired(); r {
		case "":
			c.log.Debug("pop3 idle timeout")
			c.reply("-ERR idle timeout, closing connection")
		case gate.Shutdown:
			c.reply("-ERR [SYS/TEMP] " + r.Text())
		default:
			c.reply("-ERR " + r.Text())
		}
		c.bw.Flush()
		return false
	default:
		// EOF or a broken connection: the session ends without UPDATE.
		return false
	}
	return true
}

func (c *conn) handshake(tc *tls.Conn) bool {
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.handshakeTimeout())
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.log.Debug("pop3 TLS handshake", "err", err)
		return false
	}
	cs := tc.ConnectionState()
	c.tls = &cs
	return true
}
