package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxRequest bounds a request body: operations take ids and addresses.
const maxRequest = 1 << 20

// Handler runs one operation. req is the request's JSON body (empty:
// none); the result is sent back as JSON.
type Handler func(ctx context.Context, peer Peer, req json.RawMessage) (any, error)

// Server answers control requests. Register operations with Handle, then
// Serve a listener from Listen; Shutdown stops it.
type Server struct {
	// Logger receives one line per request: operation, peer, outcome.
	// nil discards.
	Logger *slog.Logger
	// Classify maps a handler's error (other than an *Error) to a code;
	// nil or "" means CodeInternal.
	Classify func(error) string

	mu   sync.Mutex
	ops  map[string]Handler
	http *http.Server
}

// Handle registers the handler of an operation.
func (s *Server) Handle(op string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ops == nil {
		s.ops = map[string]Handler{}
	}
	s.ops[op] = h
}

// Listen creates the socket at path with the given mode. A socket left by
// a daemon that died is replaced; one a live daemon answers on is not.
// The socket gets its mode before it gets its name, so no client ever
// sees it with looser permissions.
func Listen(path string, mode os.FileMode) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another vmaild serve answers on it", path)
		}
		os.Remove(path)
	}
	tmp := path + ".new" + strconv.Itoa(os.Getpid())
	os.Remove(tmp)
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, mode); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &listener{UnixListener: ul, path: path}, nil
}

// listener removes its socket when closed.
type listener struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (l *listener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { os.Remove(l.path) })
	return err
}

type peerKey struct{}

// Serve answers requests on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.http != nil {
		s.mu.Unlock()
		return errors.New("control: already serving")
	}
	s.http = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, peerKey{}, peerOf(c))
		},
		ErrorLog: nil,
	}
	hs := s.http
	s.mu.Unlock()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting requests and waits for those in flight until
// ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	hs := s.http
	s.mu.Unlock()
	if hs == nil {
		return nil
	}
	return hs.Shutdown(ctx)
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	peer, _ := r.Context().Value(peerKey{}).(Peer)
	prefix := "/v" + strconv.Itoa(Version) + "/"
	op, ok := strings.CutPrefix(r.URL.Path, prefix)
	if r.URL.Path == prefix && r.Method == http.MethodGet {
		s.mu.Lock()
		ops := make([]string, 0, len(s.ops))
		for name := range s.ops {
			ops = append(ops, name)
		}
		s.mu.Unlock()
		slices.Sort(ops)
		writeJSON(w, http.StatusOK, map[string]any{"version": Version, "operations": ops})
		return
	}
	s.mu.Lock()
	h := s.ops[op]
	s.mu.Unlock()
	switch {
	case !ok || h == nil:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status(CodeUnknownOp))
		w.Write(marshalError(CodeUnknownOp, fmt.Sprintf("this vmaild does not know %s (protocol version %d)", r.URL.Path, Version)))
		return
	case r.Method != http.MethodPost:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMethodNotAllowed)
		w.Write(marshalError(CodeInvalid, "use POST"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequest+1))
	if err == nil && len(body) > maxRequest {
		err = errors.New("request too large")
	}
	if err == nil && len(body) > 0 && !json.Valid(body) {
		err = errors.New("request is not JSON")
	}
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status(CodeInvalid))
		w.Write(marshalError(CodeInvalid, err.Error()))
		return
	}
	start := time.Now()
	res, err := h(r.Context(), peer, body)
	attrs := []any{"op", op, "peer_uid", peer.UID, "peer_pid", peer.PID, "duration", time.Since(start).Round(time.Millisecond)}
	if err != nil {
		code := codeOf(err, s.Classify)
		s.log().Warn("control request failed", append(attrs, "code", code, "err", err)...)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status(code))
		w.Write(marshalError(code, err.Error()))
		return
	}
	s.log().Info("control request", attrs...)
	writeJSON(w, http.StatusOK, res)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = 500, marshalError(CodeInternal, "encode answer: "+err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}

// Peer is who is on the other end of a control connection, as the kernel
// says (SO_PEERCRED); -1 where unknown.
type Peer struct {
	UID, GID, PID int
}
