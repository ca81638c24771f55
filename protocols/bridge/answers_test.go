package bridge

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/internal/testsrv"
)

func TestLookup(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		table Table
		key   string
		want  string
	}{
		{MailboxDomains, "example.com", "OK example.com"},
		{MailboxDomains, "Example.COM", "OK example.com"},
		{MailboxDomains, "alias.example", "OK alias.example"},
		{MailboxDomains, "remote.test", "NOTFOUND"},
		{MailboxDomains, "not a domain", "NOTFOUND"},
		{Mailboxes, "alice@example.com", "OK alice@example.com"},
		{Mailboxes, "alice+lists@example.com", "OK alice@example.com"},
		{Mailboxes, "sales@example.com", "NOTFOUND"},
		{Mailboxes, "nobody@example.com", "NOTFOUND"},
		{Mailboxes, "@example.com", "NOTFOUND"},
		{Aliases, "sales@example.com", "OK alice@example.com,bob@example.com"},
		{Aliases, "alice@example.com", "OK alice@example.com"},
		{Aliases, "alice+lists@example.com", "OK alice+lists@example.com"},
		{Aliases, "alice@alias.example", "OK alice@example.com"},
		{Aliases, "anything@catch.example", "OK bob@example.com"},
		{Aliases, "nobody@example.com", "NOTFOUND"},
		{Aliases, "loop-a@example.com", "NOTFOUND"},
		{Aliases, "someone@remote.test", "NOTFOUND"},
		{Aliases, "@example.com", "NOTFOUND"},
		{Aliases, "alice", "NOTFOUND"},
		{SenderLogins, "alice@example.com", "OK alice@example.com"},
		{SenderLogins, "alice+x@example.com", "OK alice@example.com"},
		{SenderLogins, "alice@alias.example", "OK alice@example.com"},
		{SenderLogins, "sales@example.com", "OK bob@example.com"},
		{SenderLogins, "nobody@example.com", "NOTFOUND"},
		{"no_such_table", "x@example.com", `PERM no such table "no_such_table"`},
	} {
		if got := f.answers.Lookup(ctx, tc.table, tc.key).String(); got != tc.want {
			t.Errorf("%s %q: %q, want %q", tc.table, tc.key, got, tc.want)
		}
	}
}

// saslauthdRequest is what Cyrus SASL sends: four counted strings.
func saslauthdRequest(fields ...string) string {
	var b strings.Builder
	for _, f := range fields {
		binary.Write(&b, binary.BigEndian, uint16(len(f)))
		b.WriteString(f)
	}
	return b.String()
}

// answer reads one counted string.
func (c *client) counted() string {
	c.t.Helper()
	var n uint16
	if err := binary.Read(c.r, binary.BigEndian, &n); err != nil {
		c.t.Fatalf("read answer length: %v", err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.r, b); err != nil {
		c.t.Fatalf("read answer: %v", err)
	}
	return string(b)
}

func TestSaslauthd(t *testing.T) {
	f := newFixture(t)
	path := serve(t, &Saslauthd{Answers: f.answers}, 0)
	for _, tc := range []struct {
		login, password, service, realm string
		want                            string
	}{
		{"alice@example.com", "alice-secret", "smtp", "", "OK"},
		{"alice", "alice-secret", "smtp", "example.com", "OK"},
		{"alice@example.com", "wrong", "smtp", "", "NO authentication failed"},
		{"nobody@example.com", "x", "imap", "", "NO authentication failed"},
		{"alice@example.com", "alice-secret\x00junk", "smtp", "", "NO authentication failed"},
	} {
		c := dial(t, path)
		c.send(saslauthdRequest(tc.login, tc.password, tc.service, tc.realm))
		if got := c.counted(); got != tc.want {
			t.Errorf("%s/%s: %q, want %q", tc.login, tc.realm, got, tc.want)
		}
	}
}

// TestTestsaslauthd: Cyrus SASL's own client authenticates through the
// socket.
func TestTestsaslauthd(t *testing.T) {
	bin := requireTool(t, "testsaslauthd")
	f := newFixture(t)
	path := serve(t, &Saslauthd{Answers: f.answers}, 0)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-u", "alice@example.com", "-p", "alice-secret"}, `0: OK "Success."`},
		{[]string{"-u", "bob", "-r", "example.com", "-p", "bob-secret", "-s", "smtp"}, `0: OK "Success."`},
		{[]string{"-u", "alice@example.com", "-p", "wrong"}, `0: NO "authentication failed"`},
	} {
		out, _ := exec.Command(bin, append([]string{"-f", path}, tc.args...)...).CombinedOutput()
		if got := strings.TrimSpace(string(out)); got != tc.want {
			t.Errorf("testsaslauthd %v: %q, want %q", tc.args, got, tc.want)
		}
	}
}

func requireTool(t testing.TB, name string) string {
	return testsrv.RequireBinary(t, name)
}

func policyRequest(state, rcpt string) string {
	return fmt.Sprintf("request=smtpd_access_policy\nprotocol_state=%s\nprotocol_name=ESMTP\nclient_address=192.0.2.1\nsender=x@remote.test\nrecipient=%s\ninstance=1.2\n\n", state, rcpt)
}

func TestPolicy(t *testing.T) {
	f := newFixture(t)
	path := serve(t, &Policy{Answers: f.answers}, 0)
	c := dial(t, path) // one connection for every request, as Postfix keeps it
	for _, tc := range []struct {
		state, rcpt, want string
	}{
		{"RCPT", "alice@example.com", "action=DUNNO"},
		{"RCPT", "sales@example.com", "action=DUNNO"},
		{"RCPT", "x@catch.example", "action=DUNNO"},
		{"RCPT", "someone@remote.test", "action=DUNNO"},
		{"RCPT", "full@example.com", "action=DEFER_IF_PERMIT 4.2.2 Mailbox full"},
		{"RCPT", "nobody@example.com", "action=550 5.1.1 No such user here"},
		{"RCPT", "loop-a@example.com", "action=554 5.4.6 Alias expansion loop"},
		{"DATA", "nobody@example.com", "action=DUNNO"},
	} {
		c.send(policyRequest(tc.state, tc.rcpt))
		if got := c.line(); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.state, tc.rcpt, got, tc.want)
		}
		if l := c.line(); l != "" {
			t.Fatalf("answer not ended by an empty line: %q", l)
		}
	}
}

func netstring(s string) string { return fmt.Sprintf("%d:%s,", len(s), s) }

func (c *client) netstring() string {
	c.t.Helper()
	var n int
	if _, err := fmt.Fscanf(c.r, "%d:", &n); err != nil {
		c.t.Fatalf("read netstring length: %v", err)
	}
	b := make([]byte, n+1)
	if _, err := io.ReadFull(c.r, b); err != nil || b[n] != ',' {
		c.t.Fatalf("read netstring: %q, %v", b, err)
	}
	return string(b[:n])
}

func TestSocketmap(t *testing.T) {
	f := newFixture(t)
	c := dial(t, serve(t, &Socketmap{Answers: f.answers}, 0))
	for _, tc := range []struct{ req, want string }{
		{"virtual_mailbox_domains example.com", "OK example.com"},
		{"virtual_alias_maps sales@example.com", "OK alice@example.com,bob@example.com"},
		{"virtual_mailbox_maps nobody@example.com", "NOTFOUND"},
		{"smtpd_sender_login_maps sales@example.com", "OK bob@example.com"},
		{"virtual_alias_maps x\x00y@example.com", "NOTFOUND"},
		{"nokey", `PERM request is not "NAME KEY"`},
	} {
		c.send(netstring(tc.req))
		if got := c.netstring(); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.req, got, tc.want)
		}
	}
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run", "vmaild", "auth")
	for range 2 { // the second time over the first's stale socket
		ln, err := Listen(Socket{Address: path, Mode: 0o640})
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o640 || fi.Mode()&os.ModeSocket == 0 {
			t.Errorf("socket: %v, %v; want a socket of mode 0640", fi, err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close()
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := Listen(Socket{Address: file}); err == nil {
		t.Error("Listen replaced a file that is not a socket")
	}
	for _, bad := range []string{"0.0.0.0:1", "192.0.2.1:1", "[2001:db8::1]:1", "mux"} {
		if _, err := Listen(Socket{Address: bad}); err == nil {
			t.Errorf("Listen(%q) accepted", bad)
		}
	}
	ln, err := Listen(Socket{Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("loopback TCP: %v", err)
	}
	ln.Close()
}
