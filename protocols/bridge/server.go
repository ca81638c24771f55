// Package bridge lets an MTA that stays in front of vmaild (Postfix, Exim)
// use vmaild's directory instead of a second copy of it: four small socket
// protocols, each the one Postfix already speaks to a helper.
//
//   - Dovecot's authentication protocol (smtpd_sasl_type = dovecot, Exim's
//     dovecot authenticator): PLAIN and LOGIN, answered through the login
//     service every vmaild listener uses (dovecot.go).
//   - saslauthd's protocol (Cyrus SASL's pwcheck_method: saslauthd), the
//     drop-in for saslauthd's shadow mechanism (saslauthd.go).
//   - Postfix's policy delegation (check_policy_service): per recipient,
//     the answer vmaild's own RCPT would give (policy.go).
//   - Postfix's socketmap lookup tables: virtual_mailbox_domains,
//     virtual_mailbox_maps, virtual_alias_maps and smtpd_sender_login_maps
//     (socketmap.go).
//
// What each answer means is decided once, in answers.go, over the same
// directory, delivery agent and login service as the rest of vmaild; the
// protocol files only read and write their wire formats. Server runs any
// of them on a listener (a unix socket, or TCP on loopback).
package bridge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// DefaultTimeout bounds one request, from the wait for its first octet to
// the last: a client that never finishes is closed after it.
const DefaultTimeout = 5 * time.Minute

// DefaultMaxConns is how many connections one Server holds at once.
const DefaultMaxConns = 256

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("bridge: server closed")

// Protocol is one bridge protocol: it serves one connection until the
// client leaves, an error, or ctx's end. c's deadlines are the Server's.
type Protocol interface {
	// Name is the protocol's name in logs ("dovecot-auth", "socketmap").
	Name() string
	Serve(ctx context.Context, c *Conn) error
}

// Server runs a Protocol on listeners. Set the fields, then call Serve;
// they must not change afterwards.
type Server struct {
	Protocol Protocol
	// Timeout bounds one request (0: DefaultTimeout): a client silent or
	// unfinished for that long is closed.
	Timeout time.Duration
	// MaxConns bounds the connections served at once (0:
	// DefaultMaxConns); further clients wait in the listen queue.
	MaxConns int
	// Logger receives a line per connection error; nil discards.
	Logger *slog.Logger

	initOnce sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
	slots    chan struct{}
	log      *slog.Logger

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*Conn]struct{}
	wg        sync.WaitGroup
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		n := s.MaxConns
		if n <= 0 {
			n = DefaultMaxConns
		}
		s.slots = make(chan struct{}, n)
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.New(slog.DiscardHandler)
		}
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*Conn]struct{}{}
	})
}

func (s *Server) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return DefaultTimeout
}

// Serve accepts connections on l until Shutdown or Close, and returns
// ErrServerClosed then.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		select {
		case s.slots <- struct{}{}:
		case <-s.ctx.Done():
			return ErrServerClosed
		}
		raw, err := l.Accept()
		if err != nil {
			<-s.slots
			if s.shuttingDown() {
				return ErrServerClosed
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				// Out of descriptors, or a client gone before it was
				// accepted: wait a little and go on, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("%s accept: %w", s.Protocol.Name(), err)
		}
		backoff = 0
		c := s.track(raw)
		if c == nil {
			<-s.slots
			raw.Close()
			return ErrServerClosed
		}
		go s.serveConn(c)
	}
}

func (s *Server) shuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) track(raw net.Conn) *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	c := newConn(raw, s.timeout())
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c
}

func (s *Server) serveConn(c *Conn) {
	defer func() {
		c.raw.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		<-s.slots
		s.wg.Done()
	}()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	err := s.Protocol.Serve(ctx, c)
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, errShutdown), s.ctx.Err() != nil:
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.log.Info("bridge client timed out", "protocol", s.Protocol.Name(), "timeout", s.timeout())
	case errors.Is(err, errHangUp):
		s.log.Info("bridge client refused", "protocol", s.Protocol.Name(), "err", err)
	default:
		s.log.Info("bridge connection ended", "protocol", s.Protocol.Name(), "err", err)
	}
}

// Shutdown stops listening and waits for the connections to end, closing
// them all when ctx ends first. The bridge protocols keep connections open
// between requests (Postfix pools them), so an idle one is closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.closeIfIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		<-done
		return ctx.Err()
	}
}

// Close stops listening and ends every connection now.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// Conn is one client connection as a Protocol sees it: buffered reads
// and writes under the request deadline. The client that counts is the
// one the MTA names in its request (Dovecot's rip=), not the MTA.
type Conn struct {
	raw     net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration

	mu   sync.Mutex
	busy bool // inside a request
	shut bool // Shutdown asked; close at the next idle point
}

func newConn(raw net.Conn, timeout time.Duration) *Conn {
	return &Conn{raw: raw, r: bufio.NewReaderSize(raw, 4096), w: bufio.NewWriterSize(raw, 4096), timeout: timeout}
}

// Next waits for the client's next request: the first octet within the
// timeout, then the whole request within the timeout from there. It
// returns io.EOF when the client left between requests, and errShutdown
// when the server is shutting down.
func (c *Conn) Next() error {
	c.mu.Lock()
	if c.shut {
		c.mu.Unlock()
		return errShutdown
	}
	c.raw.SetDeadline(time.Now().Add(c.timeout))
	c.mu.Unlock()
	_, err := c.r.Peek(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut {
		return errShutdown
	}
	if err != nil {
		return err
	}
	c.busy = true
	c.raw.SetDeadline(time.Now().Add(c.timeout))
	return nil
}

// End sends the answer: the connection is idle until Next.
func (c *Conn) End() error {
	err := c.w.Flush()
	c.mu.Lock()
	c.busy = false
	shut := c.shut
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if shut {
		return errShutdown
	}
	return nil
}

func (c *Conn) closeIfIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shut = true
	if !c.busy {
		// Wakes a Protocol blocked before its next request.
		c.raw.SetReadDeadline(time.Unix(1, 0))
	}
}

var (
	errShutdown = errors.New("server shutting down")
	// errHangUp wraps the errors after which a protocol closes the
	// connection on a client that broke the protocol.
	errHangUp = errors.New("protocol error")
)

// hangUp is a protocol error that ends the connection.
func hangUp(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errHangUp, fmt.Sprintf(format, args...))
}
