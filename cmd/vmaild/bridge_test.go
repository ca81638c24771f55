package main

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/testsrv"
)

// TestAuthTestAndLookup: the admin's view of what the bridge answers.
func TestAuthTestAndLookup(t *testing.T) {
	c := newCLI(t, sqliteConfig(t.TempDir()))
	c.ok("", "domain", "add", "example.com")
	c.ok("", "domain", "add", "catch.example", "--catch-all", "alice@example.com")
	c.ok("alice-pw\n", "user", "add", "alice@example.com", "--password-stdin")
	c.ok("", "alias", "add", "sales@example.com", "alice@example.com")

	wantLines(t, "auth test", c.ok("alice-pw\n", "auth", "test", "alice@example.com"), "auth succeeded: user=alice@example.com")
	for _, tc := range []struct{ login, pw string }{{"alice@example.com", "wrong"}, {"nobody@example.com", "nobody-pw"}} {
		out, _, err := c.run(tc.pw+"\n", "auth", "test", tc.login)
		var es exitStatus
		if !errors.As(err, &es) || es.code != 1 || !strings.Contains(out, "auth failed") {
			t.Errorf("auth test %s: %q, %v; want auth failed, exit 1", tc.login, out, err)
		}
	}

	for _, tc := range []struct{ table, key, want string }{
		{"virtual_alias_maps", "sales@example.com", "alice@example.com\n"},
		{"virtual_alias_maps", "whoever@catch.example", "alice@example.com\n"},
		{"virtual_mailbox_maps", "alice+x@example.com", "alice@example.com\n"},
		{"virtual_mailbox_domains", "example.com", "example.com\n"},
		{"smtpd_sender_login_maps", "alice@example.com", "alice@example.com\n"},
	} {
		if got := c.ok("", "lookup", tc.table, tc.key); got != tc.want {
			t.Errorf("lookup %s %s: %q, want %q", tc.table, tc.key, got, tc.want)
		}
	}
	out, _, err := c.run("", "lookup", "virtual_alias_maps", "nobody@example.com")
	var es exitStatus
	if !errors.As(err, &es) || es.code != 1 || out != "" || err.Error() != "" {
		t.Errorf("lookup of a missing key: %q, %v; want nothing printed, exit 1", out, err)
	}
	if msg := c.fails("", "lookup", "passwd", "root"); !strings.Contains(msg, `no table "passwd"`) {
		t.Errorf("lookup in an unknown table: %q", msg)
	}
}

// TestServeBridge: `vmaild serve` opens the bridge's sockets as
// configured, answers on them, and removes them when it stops.
func TestServeBridge(t *testing.T) {
	sockets := t.TempDir()
	auth := filepath.Join(sockets, "auth")
	t.Setenv("VMAILD_LISTEN_DOVECOT_AUTH_ADDRESS", auth)
	t.Setenv("VMAILD_LISTEN_DOVECOT_AUTH_MODE", "0600")
	socketmap := fmt.Sprintf("127.0.0.1:%d", testsrv.FreePort(t))
	t.Setenv("VMAILD_LISTEN_SOCKETMAP_ADDRESS", socketmap)
	d := newDaemon(t, "")
	d.start()
	d.cli("", "domain", "add", "example.com")
	d.cli("alice-pw\n", "user", "add", "alice@example.com", "--password-stdin")
	d.cli("", "alias", "add", "sales@example.com", "alice@example.com")

	if fi, err := os.Stat(auth); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("dovecot_auth socket: %v, %v; want a socket of mode 0600", fi, err)
	}
	c, err := net.Dial("unix", auth)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "VERSION\t1\t1\nCPID\t1\nAUTH\t1\tPLAIN\tservice=smtp\trip=127.0.0.1\tresp=%s\n",
		base64.StdEncoding.EncodeToString([]byte("\x00alice@example.com\x00alice-pw")))
	var got []string
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("dovecot_auth: %v after %q", err, got)
		}
		got = append(got, strings.TrimSuffix(l, "\n"))
		if strings.HasPrefix(l, "OK") || strings.HasPrefix(l, "FAIL") {
			break
		}
	}
	if last := got[len(got)-1]; last != "OK\t1\tuser=alice@example.com" {
		t.Errorf("dovecot_auth answered %q", got)
	}
	c.Close()

	m, err := net.Dial("tcp", socketmap)
	if err != nil {
		t.Fatal(err)
	}
	m.SetDeadline(time.Now().Add(30 * time.Second))
	req := "virtual_alias_maps sales@example.com"
	fmt.Fprintf(m, "%d:%s,", len(req), req)
	want := "OK alice@example.com"
	buf := make([]byte, len(fmt.Sprintf("%d:%s,", len(want), want)))
	if _, err := io.ReadFull(m, buf); err != nil || string(buf) != fmt.Sprintf("%d:%s,", len(want), want) {
		t.Errorf("socketmap answered %q, %v", buf, err)
	}
	m.Close()

	d.stop()
	if _, err := os.Stat(auth); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dovecot_auth socket left behind: %v", err)
	}
}

// TestREADMEKeepYourPostfix: vmaild's side of the README's Postfix
// example is a configuration vmaild accepts as written.
func TestREADMEKeepYourPostfix(t *testing.T) {
	testsrv.RequireBinary(t, "postfix") // the example's sockets belong to the postfix user
	yaml := readmeBlock(t, "## Keep your Postfix")
	c := newCLI(t, yaml+"data_dir: "+t.TempDir()+"\n")
	out := c.ok("", "config", "check")
	wantLines(t, "config check", out, "configuration: ok")
}

func TestBridgeConfigProblems(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"listen:\n  policy: {address: \"0.0.0.0:10023\"}\n", "listen.policy: \"0.0.0.0:10023\": TCP is for loopback addresses only"},
		{"listen:\n  socketmap: {address: /run/x.sock, mode: \"0999\"}\n", "listen.socketmap: mode \"0999\" is not an octal file mode"},
		{"listen:\n  dovecot_auth: {address: /run/x.sock, user: no-such-user-here}\n", "listen.dovecot_auth: user \"no-such-user-here\""},
		{"listen:\n  saslauthd: {address: \"mux\"}\n", "listen.saslauthd: \"mux\" is neither a unix socket path nor host:port"},
	} {
		c := newCLI(t, tc.yaml+"data_dir: "+t.TempDir()+"\n")
		if msg := c.fails("", "config", "check"); !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %q, want %q", tc.yaml, msg, tc.want)
		}
	}
}
