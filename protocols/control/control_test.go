package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var errGone = errors.New("gone")

// serve starts a Server with an echo, a not-found and a failing operation.
func serve(t *testing.T, path string) (*Server, *syncBuf) {
	t.Helper()
	logs := &syncBuf{}
	s := &Server{
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Classify: func(err error) string {
			if errors.Is(err, errGone) {
				return CodeNotFound
			}
			return ""
		},
	}
	s.Handle("echo", func(ctx context.Context, peer Peer, req json.RawMessage) (any, error) {
		var in struct{ Say string }
		if err := json.Unmarshal(req, &in); err != nil {
			return nil, Errorf(CodeInvalid, "echo: %v", err)
		}
		return map[string]any{"said": in.Say, "uid": peer.UID}, nil
	})
	s.Handle("gone", func(context.Context, Peer, json.RawMessage) (any, error) { return nil, errGone })
	s.Handle("broken", func(context.Context, Peer, json.RawMessage) (any, error) { return nil, errors.New("disk on fire") })
	ln, err := Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, logs
}

func TestControl(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	c := &Client{Socket: path}
	ctx := context.Background()
	if err := c.Call(ctx, "echo", nil, nil); !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("call with no daemon: %v, want ErrNoDaemon", err)
	}

	s, logs := serve(t, path)
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v, %v", fi.Mode(), err)
	}

	var out struct {
		Said string
		UID  int
	}
	if err := c.Call(ctx, "echo", map[string]string{"say": "hello"}, &out); err != nil {
		t.Fatal(err)
	}
	if out.Said != "hello" || out.UID != os.Getuid() {
		t.Errorf("echo answered %+v, want hello from uid %d", out, os.Getuid())
	}
	for _, tc := range []struct {
		op, code, msg string
	}{
		{"gone", CodeNotFound, "gone"},
		{"broken", CodeInternal, "disk on fire"},
		{"nosuchop", CodeUnknownOp, "does not know /v1/nosuchop"},
	} {
		err := c.Call(ctx, tc.op, nil, nil)
		var ce *Error
		if !errors.As(err, &ce) || ce.Code != tc.code || !strings.Contains(ce.Message, tc.msg) {
			t.Errorf("%s: %v, want code %s with %q", tc.op, err, tc.code, tc.msg)
		}
	}
	if err := c.Call(ctx, "echo", json.RawMessage(`"not an object"`), nil); err == nil {
		t.Error("echo of a string succeeded")
	}
	if l := logs.String(); !strings.Contains(l, "op=echo") || !strings.Contains(l, "peer_uid=") || !strings.Contains(l, "op=broken") {
		t.Errorf("log lacks the requests and peers:\n%s", l)
	}

	// GET /v1/ lists the operations, for curl --unix-socket.
	hc := (&Client{Socket: path}).http()
	res, err := hc.Get("http://vmaild/v1/")
	if err != nil {
		t.Fatal(err)
	}
	var index struct {
		Version    int
		Operations []string
	}
	err = json.NewDecoder(res.Body).Decode(&index)
	res.Body.Close()
	if err != nil || index.Version != Version || strings.Join(index.Operations, ",") != "broken,echo,gone" {
		t.Errorf("index: %+v, %v", index, err)
	}

	// A second server on the same path is refused while the first runs.
	if _, err := Listen(path, 0o600); err == nil || !strings.Contains(err.Error(), "another vmaild") {
		t.Errorf("second Listen: %v", err)
	}
	s.Shutdown(ctx)
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after Shutdown: %v", err)
	}
}

// TestListenReplacesStaleSocket: a socket whose daemon died (nobody
// answers) is replaced; a regular file in its place is not touched.
func TestListenReplacesStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "control.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	serve(t, path)
	if err := (&Client{Socket: path}).Call(context.Background(), "echo", map[string]string{"say": "x"}, nil); err != nil {
		t.Errorf("call after replacing a stale socket: %v", err)
	}

	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("keep"), 0o600)
	if _, err := Listen(file, 0o600); err == nil {
		t.Error("Listen over a regular file succeeded")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Error("Listen changed a regular file")
	}
}
