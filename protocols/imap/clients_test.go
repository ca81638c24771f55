package imap

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needTool finds a real client program, skipping the test without it
// unless CI is set, where a missing client is a failure.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed; skipping the real-client test", name)
	}
	return p
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	return string(out)
}

const imaplibScript = `
import imaplib, ssl, sys
host, port, tlsport, cafile, user, pw = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False

m = imaplib.IMAP4(host, port)
assert 'STARTTLS' in m.capabilities and 'LOGINDISABLED' in m.capabilities, m.capabilities
m.starttls(ssl_context=ctx)
typ, _ = m.login(user, pw)
assert typ == 'OK'
body = b"From: py@example.net\r\nSubject: from imaplib\r\n\r\n.dot line\r\n\xc3\xa9t\xc3\xa9\r\n"
typ, data = m.append('INBOX', r'(\Flagged)', None, body)
assert typ == 'OK' and b'APPENDUID' in data[0], data
typ, data = m.select('INBOX')
assert typ == 'OK', data
typ, data = m.search(None, 'FLAGGED')
assert data[0].split() == [b'1'], data
typ, data = m.fetch('1', '(BODY.PEEK[])')
assert data[0][1] == body, data
typ, data = m.getquotaroot('INBOX')
assert typ == 'OK', data
assert b'STORAGE' in data[1][0], data
typ, data = m.store('1', '+FLAGS', r'\Deleted')
assert typ == 'OK'
typ, data = m.expunge()
assert data == [b'1'], data
m.logout()

s = imaplib.IMAP4_SSL(host, tlsport, ssl_context=ctx)
s.login(user, pw)
typ, data = s.list()
assert typ == 'OK' and any(b'\\Sent' in l for l in data), data
s.logout()
print("imaplib ok")
`

func TestPythonImaplib(t *testing.T) {
	py := needTool(t, "python3")
	e := newEnv(t, withTLS(false))
	e.dir.setLimit(testUser, limitBytes(1<<20))
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, certPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "smoke.py")
	if err := os.WriteFile(script, []byte(imaplibScript), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port := splitHostPort(t, e.addr)
	_, tlsPort := splitHostPort(t, e.tlsAdr)
	out := runTool(t, py, script, host, port, tlsPort, ca, testUser, testPass)
	if !strings.Contains(out, "imaplib ok") {
		t.Fatalf("imaplib: %s", out)
	}
}

func TestCurl(t *testing.T) {
	curl := needTool(t, "curl")
	e := newEnv(t, withTLS(false))
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, certPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	e.deliver(t, "", "Subject: for curl\r\n\r\n.line one\r\nline two\r\n")
	host, port := splitHostPort(t, e.addr)
	_, tlsPort := splitHostPort(t, e.tlsAdr)
	common := []string{"--silent", "--show-error", "--cacert", ca, "--user", testUser + ":" + testPass,
		"--resolve", "imap.example.org:" + port + ":" + host, "--resolve", "imap.example.org:" + tlsPort + ":" + host}

	// STARTTLS required (--ssl-reqd), fetch message 1 byte for byte.
	out := runTool(t, curl, append(common, "--ssl-reqd", "imap://imap.example.org:"+port+"/INBOX;UID=1")...)
	if out != "Subject: for curl\r\n\r\n.line one\r\nline two\r\n" {
		t.Errorf("curl fetch: %q", out)
	}
	// Implicit TLS: LIST.
	out = runTool(t, curl, append(common, "imaps://imap.example.org:"+tlsPort+"/")...)
	if !strings.Contains(out, "INBOX") || !strings.Contains(out, `\Trash`) {
		t.Errorf("curl list: %q", out)
	}
	// A custom command: EXAMINE, and SEARCH.
	out = runTool(t, curl, append(common, "imaps://imap.example.org:"+tlsPort+"/INBOX?SUBJECT%20curl")...)
	if !strings.Contains(out, "SEARCH 1") {
		t.Errorf("curl search: %q", out)
	}
}
