package managesieve

import (
	"bufio"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/protocols/gate"
)

// TestHostileInput: each bad line gets a precise answer; a session that
// can be followed goes on (NOOP answers), one that cannot is closed with
// BYE.
func TestHostileInput(t *testing.T) {
	addr := startServer(t, &Server{AllowInsecureAuth: true, MaxScriptSize: 100, MaxBadCommands: 50})
	for _, tc := range []struct {
		name, send, want string
		authed, closes   bool
	}{
		{name: "unknown command", send: "FROB\r\n", want: `NO "unknown command"`},
		{name: "empty line", send: "\r\n", want: `NO "empty command"`},
		{name: "NUL in command", send: "NO\x00OP\r\n", want: `NO "NUL octet in command"`},
		{name: "NUL in string", send: "CHECKSCRIPT \"a\x00b\"\r\n", want: `NO "NUL octet in a quoted string"`, authed: true},
		{name: "bad escape", send: "NOOP \"a\\nb\"\r\n", want: `NO "a quoted string may escape only a quote and a backslash"`},
		{name: "unterminated quoted", send: "NOOP \"abc\r\n", want: `NO "unterminated quoted string"`},
		{name: "long quoted", send: "NOOP \"" + strings.Repeat("a", 1100) + "\"\r\n", want: `NO "quoted string longer than 1024 octets: send a literal"`},
		{name: "commands before auth", send: "GETSCRIPT \"x\"\r\n", want: `NO "authenticate first"`},
		{name: "putscript before auth", send: "PUTSCRIPT \"x\" {5+}\r\nkeep;\r\n", want: `NO "authenticate first"`},
		{name: "oversized literal", send: "PUTSCRIPT \"x\" {200+}\r\n" + strings.Repeat("#", 200) + "\r\n", want: `NO (QUOTA/MAXSIZE) "literal of 200 octets exceeds the limit of 100"`, authed: true},
		{name: "literal then junk", send: "CHECKSCRIPT {5+}\r\nkeep;junk\r\n", want: `NO "usage: CHECKSCRIPT {size+}script"`, authed: true},
		{name: "bad literal", send: "CHECKSCRIPT {5x}\r\n", want: `NO "bad literal: want {n+} or {n}"`, authed: true},
		{name: "literal length not ending the line", send: "CHECKSCRIPT {5+} \r\n", want: `NO "a literal's length must end the line"`, authed: true},
		{name: "huge number", send: "HAVESPACE \"a\" 99999999999\r\n", want: `NO "number too large"`, authed: true},
		{name: "wrong argument types", send: "HAVESPACE 1 \"a\"\r\n", want: `NO "usage: HAVESPACE \"name\" size"`, authed: true},
		{name: "too many arguments", send: "NOOP" + strings.Repeat(` "a"`, 9) + "\r\n", want: `NO "too many arguments"`},
		{name: "CR without LF", send: "NOOP\rX\r\n", want: `NO "CR not followed by LF"`},
		{name: "literal beyond the discard limit", send: "CHECKSCRIPT {99999999+}\r\n", want: `BYE "unrecoverable protocol error: literal of 99999999 octets"`, closes: true},
		{name: "line too long", send: "NOOP " + strings.Repeat(" ", 9000) + "\r\n", want: `BYE "unrecoverable protocol error: line longer than 8192 octets"`, closes: true},
	} {
		c := dial(t, addr)
		if tc.authed {
			c.login("me@example.com", "secret")
		}
		c.send(tc.send)
		if got := c.response(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		if tc.closes {
			c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.r.ReadByte(); err == nil {
				t.Errorf("%s: connection still open", tc.name)
			}
			continue
		}
		if got := c.cmd("NOOP"); got != `OK "Done"` {
			t.Errorf("%s: NOOP after: %q", tc.name, got)
		}
	}
}

// TestTooManyBadCommands: a client sending junk is cut off.
func TestTooManyBadCommands(t *testing.T) {
	c := dial(t, startServer(t, &Server{MaxBadCommands: 3}))
	c.cmd("X")
	c.cmd("Y")
	if got := c.cmd("Z"); got != `BYE "too many bad commands"` {
		t.Errorf("third bad command: %q", got)
	}
}

// TestNeverFinishes: a client that stops in the middle of a command
// (a quoted string, a literal, a SASL exchange) is disconnected at the
// idle timeout with BYE.
func TestNeverFinishes(t *testing.T) {
	addr := startServer(t, &Server{AllowInsecureAuth: true, Timeouts: Timeouts{Idle: 300 * time.Millisecond}})
	for _, partial := range []string{"NOOP \"abc", "CHECKSCRIPT {10+}\r\nkee", "AUTHENTICATE \"PLAIN\"\r\n", "NOO", ""} {
		c := dial(t, addr)
		c.send(partial)
		all, _ := io.ReadAll(c.r) // the server closes
		if s := string(all); !strings.HasSuffix(s, "BYE \"idle timeout\"\r\n") {
			t.Errorf("%q: got %q", partial, s)
		}
	}
}

// TestNoGoroutineLeak: connections in every state end with their
// goroutines when the server is closed.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	srv := &Server{Backend: newMemBackend(), AllowInsecureAuth: true}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	var conns []net.Conn
	for i, partial := range []string{"", "NOOP \"abc", "CHECKSCRIPT {10+}\r\nkee", "AUTHENTICATE \"PLAIN\"\r\n"} {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(nc, partial)
		if i == 0 {
			bufio.NewReader(nc).ReadString('\n')
		}
		conns = append(conns, nc)
	}
	srv.Close()
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	for _, nc := range conns {
		nc.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Close, %d before\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestGateLimits: the gate's per-network cap refuses a connection with
// BYE (TRYLATER), and Shutdown says goodbye to an idle session.
func TestGateLimits(t *testing.T) {
	cfg := gate.DefaultConfig()
	cfg.MaxPerNetwork = 1
	cfg.ExemptNetworks = nil
	g := &gate.Gate{Limits: cfg}
	srv := &Server{Gate: g}
	addr := startServer(t, srv)
	c := dial(t, addr)
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	line, _ := bufio.NewReader(nc).ReadString('\n')
	if !strings.HasPrefix(line, "BYE (TRYLATER) ") {
		t.Errorf("second connection from one network: %q", line)
	}
	go srv.Shutdown(t.Context())
	all, _ := io.ReadAll(c.r)
	if !strings.Contains(string(all), "BYE (TRYLATER)") {
		t.Errorf("shutdown: %q", all)
	}
}
