package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmaild/vmaild/backend/queue"
	"github.com/vmaild/vmaild/protocols/control"
	"github.com/vmaild/vmaild/protocols/gate"
	"github.com/vmaild/vmaild/userdb"
)

// The control channel (protocols/control) lets the admin commands act on
// the running daemon: the queue it owns, its directory cache, its
// configuration and its listeners. This file is both ends: the operations
// `vmaild serve` answers, and the client the commands call them with.

// ControlConfig is the admin channel's unix socket.
type ControlConfig struct {
	Socket string `yaml:"socket" help:"unix socket on which serve answers vmaild queue, auth-cache, reload and status; created by serve as its (run_as) user (default data_dir/control.sock)"`
	Mode   string `yaml:"mode" help:"file mode of the socket: 0600 (vmaild's user and root) or 0660 (its group too)"`
}

// maxSocketPath is the longest unix socket path Linux takes (sun_path,
// less its NUL).
const maxSocketPath = 107

// resolve fills the default socket and checks the mode.
func (c *ControlConfig) resolve(dataDir string) []string {
	var problems []string
	if c.Socket == "" {
		c.Socket = filepath.Join(dataDir, "control.sock")
	}
	if len(c.Socket) > maxSocketPath {
		problems = append(problems, fmt.Sprintf("control.socket: %q is %d bytes, longer than a unix socket path may be (%d): set control.socket to a shorter path", c.Socket, len(c.Socket), maxSocketPath))
	}
	if _, err := c.fileMode(); err != nil {
		problems = append(problems, err.Error())
	}
	return problems
}

// fileMode reads the mode as octal; an unquoted 0660 in YAML arrives as
// its decimal value (432), which is taken too.
func (c ControlConfig) fileMode() (os.FileMode, error) {
	for _, base := range []int{8, 10} {
		if m, err := strconv.ParseUint(c.Mode, base, 32); err == nil && (m == 0o600 || m == 0o660) {
			return os.FileMode(m), nil
		}
	}
	return 0, fmt.Errorf("control.mode: %q is not \"0600\" or \"0660\"", c.Mode)
}

// Control operations and their requests.
const (
	opQueueList     = "queue.list"
	opQueueShow     = "queue.show"
	opQueueFlush    = "queue.flush"
	opQueueRetry    = "queue.retry"
	opQueueHold     = "queue.hold"
	opQueueRelease  = "queue.release"
	opQueueDelete   = "queue.delete"
	opAuthFlush     = "auth-cache.flush"
	opReload        = "reload"
	opStatus        = "status"
	controlTimeout  = time.Minute
	controlShutdown = 5 * time.Second
)

type queueRequest struct {
	ID   string `json:"id,omitempty"`
	Rcpt string `json:"rcpt,omitempty"`
}

type queueShowAnswer struct {
	Item    queue.Item `json:"item"`
	Message []byte     `json:"message"`
}

type authFlushRequest struct {
	User string `json:"user,omitempty"` // "": every entry
}

type authFlushAnswer struct {
	Flushed string `json:"flushed"` // the canonical address, or "all"
}

// reloadAnswer says what a reload changed and what waits for a restart.
type reloadAnswer struct {
	Applied     []string `json:"applied"`
	NeedRestart []string `json:"need_restart"`
	Certificate string   `json:"certificate"`
	DKIM        string   `json:"dkim"`
}

type statusAnswer struct {
	PID       int         `json:"pid"`
	Started   time.Time   `json:"started"`
	Gate      gate.Status `json:"gate"`
	Queue     queue.Stats `json:"queue"`
	Held      int         `json:"held"`
	LogLevel  string      `json:"log_level"`
	CacheTTL  string      `json:"cache_ttl"`
	CacheNeg  string      `json:"cache_negative_ttl"`
	CacheHits uint64      `json:"cache_hits"`
	CacheMiss uint64      `json:"cache_misses"`
}

// controlState is what the control channel adds to the running server.
type controlState struct {
	srv     *control.Server
	done    chan error
	started time.Time
	level   *slog.LevelVar
	reread  func() (Config, error)

	mu   sync.Mutex // one reload at a time
	live Config     // the configuration, with the reloads applied
}

// startControl opens the control socket and answers on it.
func (s *server) startControl(level *slog.LevelVar, reread func() (Config, error)) error {
	c := s.cfg.Control
	mode, err := c.fileMode()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.Socket), 0o750); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	ln, err := control.Listen(c.Socket, mode)
	if err != nil {
		return err
	}
	cs := &controlState{done: make(chan error, 1), started: time.Now(), level: level, reread: reread, live: s.cfg}
	cs.srv = &control.Server{Logger: s.log.With("component", "control"), Classify: classifyControl}
	s.ctl = cs
	s.registerControl()
	s.registerLimits()
	go func() { cs.done <- cs.srv.Serve(ln) }()
	s.log.Info("listening", "listener", "control", "address", c.Socket, "mode", fmt.Sprintf("%04o", mode))
	return nil
}

func (s *server) stopControl() {
	if s.ctl == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlShutdown)
	defer cancel()
	s.ctl.srv.Shutdown(ctx)
	<-s.ctl.done
}

func classifyControl(err error) string {
	switch {
	case errors.Is(err, queue.ErrNotFound), errors.Is(err, userdb.ErrNotFound):
		return control.CodeNotFound
	case errors.Is(err, queue.ErrHeld):
		return control.CodeConflict
	case errors.Is(err, errBadRequest):
		return control.CodeInvalid
	}
	return ""
}

var errBadRequest = errors.New("bad request")

// decode reads a request; an empty body is the zero request.
func decode[T any](raw json.RawMessage) (T, error) {
	var v T
	if len(raw) == 0 {
		return v, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	return v, nil
}

// audit logs a change made through the control channel, with who made it.
func (s *server) audit(peer control.Peer, msg string, attrs ...any) {
	s.log.Info(msg, append(attrs, "via", "control", "peer_uid", peer.UID, "peer_pid", peer.PID)...)
}

// queueOp is a control operation on one queued item.
func (s *server) queueOp(what string, do func(ctx context.Context, req queueRequest) error) control.Handler {
	return func(ctx context.Context, peer control.Peer, raw json.RawMessage) (any, error) {
		req, err := decode[queueRequest](raw)
		if err != nil {
			return nil, err
		}
		if req.ID == "" && what != "flush" {
			return nil, fmt.Errorf("%w: queue %s needs an id", errBadRequest, what)
		}
		if err := do(ctx, req); err != nil {
			return nil, err // the command names the operation
		}
		s.audit(peer, "queue "+what, "queue_id", req.ID, "rcpt", req.Rcpt)
		return struct{}{}, nil
	}
}

func (s *server) registerControl() {
	h := s.ctl.srv.Handle
	q := s.queue
	h(opQueueList, func(ctx context.Context, _ control.Peer, _ json.RawMessage) (any, error) {
		return q.List(ctx)
	})
	h(opQueueShow, func(ctx context.Context, _ control.Peer, raw json.RawMessage) (any, error) {
		req, err := decode[queueRequest](raw)
		if err != nil {
			return nil, err
		}
		it, err := q.Get(ctx, req.ID)
		if err != nil {
			return nil, err
		}
		msg, err := q.Message(ctx, req.ID)
		if err != nil {
			return nil, err
		}
		defer msg.Close()
		body, err := io.ReadAll(msg)
		if err != nil {
			return nil, fmt.Errorf("queue show %s: %w", req.ID, err)
		}
		return queueShowAnswer{Item: it, Message: body}, nil
	})
	h(opQueueFlush, s.queueOp("flush", func(ctx context.Context, r queueRequest) error { return q.Flush(ctx, r.ID) }))
	h(opQueueRetry, s.queueOp("retry", func(ctx context.Context, r queueRequest) error { return q.Retry(ctx, r.ID, r.Rcpt) }))
	h(opQueueHold, s.queueOp("hold", func(ctx context.Context, r queueRequest) error { return q.Hold(ctx, r.ID) }))
	h(opQueueRelease, s.queueOp("release", func(ctx context.Context, r queueRequest) error { return q.Unhold(ctx, r.ID) }))
	h(opQueueDelete, s.queueOp("delete", func(ctx context.Context, r queueRequest) error { return q.Delete(ctx, r.ID) }))
	h(opAuthFlush, func(ctx context.Context, peer control.Peer, raw json.RawMessage) (any, error) {
		req, err := decode[authFlushRequest](raw)
		if err != nil {
			return nil, err
		}
		if req.User == "" {
			s.dir.cache.Flush()
			s.audit(peer, "directory cache flushed")
			return authFlushAnswer{Flushed: "all"}, nil
		}
		addr, err := s.dir.users.LoginAddress(req.User)
		if err != nil {
			return nil, fmt.Errorf("%w: %q is not an address: %v", errBadRequest, req.User, err)
		}
		s.dir.cache.Forget(addr)
		s.audit(peer, "directory cache flushed", "user", addr)
		return authFlushAnswer{Flushed: addr}, nil
	})
	h(opReload, func(ctx context.Context, peer control.Peer, _ json.RawMessage) (any, error) {
		return s.reload(peer)
	})
	h(opStatus, func(ctx context.Context, _ control.Peer, _ json.RawMessage) (any, error) {
		items, err := q.List(ctx)
		if err != nil {
			return nil, err
		}
		held := 0
		for _, it := range items {
			if it.Held {
				held++
			}
		}
		ttl, neg := s.dir.cache.TTL()
		hits, misses := s.dir.cache.Stats()
		return statusAnswer{
			PID: os.Getpid(), Started: s.ctl.started, Gate: s.gate.Status(), Queue: q.Stats(), Held: held,
			LogLevel: s.ctl.level.Level().String(), CacheTTL: ttl.String(), CacheNeg: neg.String(),
			CacheHits: hits, CacheMiss: misses,
		}, nil
	})
}

// reload reads the configuration again and applies what can change under
// a running server: log.level, userdb.cache.ttl and negative_ttl, the
// sending limits (sending_limits.account and .domain), the DKIM keys and
// the TLS certificate (its files, as SIGHUP does). Every other section that
// changed is named as waiting for a restart. A configuration that does not
// load changes nothing.
func (s *server) reload(peer control.Peer) (reloadAnswer, error) {
	cs := s.ctl
	cs.mu.Lock()
	defer cs.mu.Unlock()
	ans := reloadAnswer{Applied: []string{}, NeedRestart: []string{}, Certificate: "reloaded"}
	if err := s.certs.reload(); err != nil {
		s.log.Error("certificate reload failed; keeping the old one", "err", err)
		ans.Certificate = "kept the old one: " + err.Error()
	} else {
		s.log.Info("certificate reloaded", "cert_file", s.certs.certFile)
	}
	if cs.reread == nil {
		ans.DKIM, _ = s.reloadDKIM(cs.live.DKIM)
		return ans, nil
	}
	next, err := cs.reread()
	if err != nil {
		s.log.Error("configuration reload failed; nothing changed", "err", err, "peer_uid", peer.UID)
		return ans, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	cur := &cs.live
	// The key files are read again whether or not the dkim keys changed:
	// a rotation adds a file, not necessarily a key.
	var loaded bool
	if ans.DKIM, loaded = s.reloadDKIM(next.DKIM); loaded {
		if !reflect.DeepEqual(next.DKIM, cur.DKIM) {
			ans.Applied = append(ans.Applied, "dkim")
		}
		cur.DKIM = next.DKIM
	}
	if next.Log.Level != cur.Log.Level {
		var l slog.Level
		if err := l.UnmarshalText([]byte(next.Log.Level)); err == nil {
			cs.level.Set(l)
			ans.Applied = append(ans.Applied, "log.level")
			cur.Log.Level = next.Log.Level
		}
	}
	if ns, cs := next.SendingLimits, cur.SendingLimits; ns.Account != cs.Account || ns.Domain != cs.Domain {
		s.sendLimits.SetLimits(ns.Account, ns.Domain)
		ans.Applied = append(ans.Applied, "sending_limits")
		cur.SendingLimits.Account, cur.SendingLimits.Domain = ns.Account, ns.Domain
	}
	// near is read by vmaild limits itself, from its own configuration.
	cur.SendingLimits.Near = next.SendingLimits.Near
	nc, cc := next.UserDB.Cache, cur.UserDB.Cache
	if nc.TTL != cc.TTL || nc.NegativeTTL != cc.NegativeTTL {
		s.dir.cache.SetTTL(nc.TTL, nc.NegativeTTL)
		if nc.TTL != cc.TTL {
			ans.Applied = append(ans.Applied, "userdb.cache.ttl")
		}
		if nc.NegativeTTL != cc.NegativeTTL {
			ans.Applied = append(ans.Applied, "userdb.cache.negative_ttl")
		}
		cur.UserDB.Cache.TTL, cur.UserDB.Cache.NegativeTTL = nc.TTL, nc.NegativeTTL
	}
	ans.NeedRestart = changedSections(*cur, next)
	s.audit(peer, "configuration reloaded", "applied", ans.Applied, "need_restart", ans.NeedRestart)
	return ans, nil
}

// changedSections names the top-level keys whose values differ.
func changedSections(a, b Config) []string {
	out := []string{}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	t := va.Type()
	for i := 0; i < t.NumField(); i++ {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			name := t.Field(i).Tag.Get("yaml")
			if name == "" || name == "-" {
				name = t.Field(i).Name
			}
			out = append(out, name)
		}
	}
	return out
}

// rereader reads the configuration as the command line did at start (the
// same file, environment and flags), for reload.
func rereader(cmd *cobra.Command, args []string, a *app) func() (Config, error) {
	return func() (Config, error) {
		pre := cmd.Root().PersistentPreRunE
		if pre == nil {
			return a.cfg, nil
		}
		if err := pre(cmd, args); err != nil {
			return Config{}, err
		}
		return a.cfg, nil
	}
}
