package imap

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	goimap "github.com/emersion/go-imap/v2"
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

// mbsyncConfig is a private mbsync configuration: the test server's
// plain listener with LOGIN in the clear, a Maildir++-less Maildir tree
// with verbatim subfolders, and one channel syncing everything both
// ways, creating and expunging on both sides.
const mbsyncConfig = `IMAPAccount vmaild
Host %s
Port %s
User %s
Pass %s
SSLType None
AuthMechs LOGIN
Timeout 30

IMAPStore vmaild-remote
Account vmaild

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel test
Far :vmaild-remote:
Near :local:
Patterns *
Create Both
Remove None
Expunge Both
Sync All
SyncState *
`

// serverFolder lists a folder's messages on the server as subject → flags.
func serverFolder(t *testing.T, e *env, folder string) map[string][]string {
	t.Helper()
	c := e.login(t, nil)
	defer c.Logout()
	if _, err := c.Select(folder, &goimap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("select %s: %v", folder, err)
	}
	msgs, err := c.Fetch(goimap.SeqSet{{Start: 1, Stop: 0}}, &goimap.FetchOptions{Envelope: true, Flags: true}).Collect()
	if err != nil && !strings.Contains(err.Error(), "No matching messages") {
		t.Fatalf("fetch %s: %v", folder, err)
	}
	out := map[string][]string{}
	for _, m := range msgs {
		var flags []string
		for _, f := range m.Flags {
			flags = append(flags, string(f))
		}
		sort.Strings(flags)
		out[m.Envelope.Subject] = flags
	}
	return out
}

// localFolder lists a Maildir folder as subject → Maildir info flags
// (the letters after ":2,").
func localFolder(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range ents {
			b, err := os.ReadFile(filepath.Join(dir, sub, ent.Name()))
			if err != nil {
				t.Fatal(err)
			}
			subject := ""
			for _, l := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n") {
				if l == "" {
					break
				}
				if s, ok := strings.CutPrefix(l, "Subject: "); ok {
					subject = s
				}
			}
			_, info, _ := strings.Cut(ent.Name(), ":2,")
			out[subject] = info
		}
	}
	return out
}

func TestMbsync(t *testing.T) {
	mbsync := needTool(t, "mbsync")
	// mbsync sends COMPRESS DEFLATE whenever offered, then flushes each
	// command with zlib's Z_PARTIAL_FLUSH (an empty fixed block, no
	// stored block): every sync below runs compressed.
	e := newEnv(t)
	msg := func(subject string) string {
		return "From: bob@example.net\r\nTo: " + testUser + "\r\nSubject: " + subject + "\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.net>\r\n\r\nbody of " + subject + "\r\n"
	}
	c := e.login(t, nil)
	if err := c.Create("Lists", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout()
	e.deliver(t, "", msg("one"))
	e.deliver(t, "", msg("two"))
	e.deliver(t, "", msg("three"))
	e.deliver(t, "Lists", msg("list one"))

	dir := t.TempDir()
	mail := filepath.Join(dir, "Mail")
	if err := os.Mkdir(mail, 0o700); err != nil {
		t.Fatal(err)
	}
	host, port := splitHostPort(t, e.addr)
	cfg := filepath.Join(dir, "mbsyncrc")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(mbsyncConfig, host, port, testUser, testPass, mail, mail)), 0o600); err != nil {
		t.Fatal(err)
	}
	sync := func() {
		t.Helper()
		out := runTool(t, mbsync, "-Dn", "-c", cfg, "test") // -Dn: verbose, with the IMAP traffic
		t.Logf("mbsync:\n%s", out)
		if !strings.Contains(out, "OK DEFLATE active") {
			t.Errorf("mbsync did not compress")
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "rror") || strings.HasPrefix(l, "Warning") || strings.Contains(l, "NO [LIMIT]") {
				t.Errorf("mbsync: %s", l)
			}
		}
	}

	sync()
	inbox, lists := filepath.Join(mail, "INBOX"), filepath.Join(mail, "Lists")
	if got := localFolder(t, inbox); len(got) != 3 || got["one"] != "" || got["two"] != "" || got["three"] != "" {
		t.Fatalf("first sync, local INBOX: %q", got)
	}
	if got := localFolder(t, lists); len(got) != 1 || got["list one"] != "" {
		t.Fatalf("first sync, local Lists: %q", got)
	}
	// mbsync stores Maildir files with LF line ends, and an X-TUID
	// header of its own after the others.
	b, err := os.ReadFile(localPath(t, inbox, "two"))
	if err != nil || tuid.ReplaceAllString(string(b), "") != strings.ReplaceAll(msg("two"), "\r\n", "\n") {
		t.Fatalf("first sync, message two arrived as %q, %v", b, err)
	}

	// Local: flag "one" and read "two"; a new local folder with a
	// message. Server: delete "three", deliver "four" and "list two".
	for subject, info := range map[string]string{"one": "F", "two": "S"} {
		old := localPath(t, inbox, subject)
		base, _, _ := strings.Cut(filepath.Base(old), ":2,")
		if err := os.Rename(old, filepath.Join(inbox, "cur", base+":2,"+info)); err != nil {
			t.Fatal(err)
		}
	}
	drafts := filepath.Join(mail, "Projects")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(drafts, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(drafts, "cur", "1700000000.local1.test:2,S"), []byte(strings.ReplaceAll(msg("project one"), "\r\n", "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	c = e.login(t, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(goimap.UIDSetNum(3), &goimap.StoreFlags{Op: goimap.StoreFlagsAdd, Silent: true, Flags: []goimap.Flag{goimap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	c.Logout()
	e.deliver(t, "", msg("four"))
	e.deliver(t, "Lists", msg("list two"))

	sync()
	wantLocal := map[string]map[string]string{
		inbox:  {"one": "F", "two": "S", "four": ""},
		lists:  {"list one": "", "list two": ""},
		drafts: {"project one": "S"},
	}
	for dir, want := range wantLocal {
		if got := localFolder(t, dir); !maps.Equal(got, want) {
			t.Errorf("second sync, local %s: %q, want %q", filepath.Base(dir), got, want)
		}
	}
	wantServer := map[string]map[string][]string{
		"INBOX":    {"one": {`\Flagged`}, "two": {`\Seen`}, "four": nil},
		"Lists":    {"list one": nil, "list two": nil},
		"Projects": {"project one": {`\Seen`}},
	}
	for folder, want := range wantServer {
		got := serverFolder(t, e, folder)
		if len(got) != len(want) {
			t.Errorf("second sync, server %s: %q, want %q", folder, got, want)
			continue
		}
		for subject, flags := range want {
			if g, ok := got[subject]; !ok || !slices.Equal(g, flags) {
				t.Errorf("second sync, server %s %q: flags %q, want %q", folder, subject, g, flags)
			}
		}
	}
}

var tuid = regexp.MustCompile(`(?m)^X-TUID: .*\n`)

// localPath finds the file of the message with subject in a Maildir folder.
func localPath(t *testing.T, dir, subject string) string {
	t.Helper()
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range ents {
			p := filepath.Join(dir, sub, ent.Name())
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "\nSubject: "+subject+"\n") {
				return p
			}
		}
	}
	t.Fatalf("no message %q in %s", subject, dir)
	return ""
}

// fetchmailRC polls the test server's plain listener over IMAP (with an
// empty sslproto: fetchmail 6.4 otherwise insists on STARTTLS, which that
// listener has not) and hands each message to an MDA writing it to a
// file of its own.
const fetchmailRC = `set no bouncemail
poll %s port %s protocol IMAP auth password timeout 30
	user "%s" there with password "%s" is "local" here
	sslproto '' %s
	mda "/bin/sh -c 'cat > $(mktemp %s/msg.XXXXXX)'"
`

func TestFetchmail(t *testing.T) {
	fetchmail := needTool(t, "fetchmail")
	e := newEnv(t)
	attachment := make([]byte, 1<<20)
	for i := range attachment {
		attachment[i] = byte(i*7 + i>>8)
	}
	enc := base64.StdEncoding.EncodeToString(attachment)
	var b64 strings.Builder
	for len(enc) > 76 {
		b64.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b64.WriteString(enc + "\r\n")
	msgs := make([]string, 3)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("From: bob@example.net\r\nTo: %s\r\nSubject: big %d\r\nMessage-ID: <big%d@example.net>\r\n"+
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
			"--b\r\nContent-Type: text/plain\r\n\r\n.a dot line %d\r\n"+
			"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n%s--b--\r\n", testUser, i, i, i, b64.String())
		e.deliver(t, "", msgs[i])
	}

	host, port := splitHostPort(t, e.addr)
	run := func(keep string) []string {
		t.Helper()
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		if err := os.Mkdir(out, 0o700); err != nil {
			t.Fatal(err)
		}
		rc := filepath.Join(dir, "fetchmailrc")
		if err := os.WriteFile(rc, []byte(fmt.Sprintf(fetchmailRC, host, port, testUser, testPass, keep, out)), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, fetchmail, "-v", "--nosyslog", "--nodetach", "-f", rc, "--pidfile", filepath.Join(dir, "pid"))
		cmd.Env = append(os.Environ(), "HOME="+dir, "FETCHMAILHOME="+dir)
		log, err := cmd.CombinedOutput()
		t.Logf("fetchmail %s:\n%.3000s", keep, log)
		if err != nil {
			t.Fatalf("fetchmail %s: %v", keep, err)
		}
		ents, err := os.ReadDir(out)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ent := range ents {
			b, err := os.ReadFile(filepath.Join(out, ent.Name()))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(b))
		}
		return got
	}
	// fetchmail hands the MDA LF line ends, after a Received header of
	// its own.
	check := func(got []string) {
		t.Helper()
		if len(got) != len(msgs) {
			t.Fatalf("fetchmail delivered %d messages, want %d", len(got), len(msgs))
		}
		for _, m := range msgs {
			want := strings.ReplaceAll(m, "\r\n", "\n")
			if !slices.ContainsFunc(got, func(g string) bool { return strings.HasSuffix(g, want) }) {
				t.Errorf("no delivered message ends with %.80q... (%d octets)", want, len(want))
			}
		}
	}

	check(run("keep"))
	inbox := serverFolder(t, e, "INBOX")
	for i := range msgs {
		if flags := inbox[fmt.Sprintf("big %d", i)]; !slices.Equal(flags, []string{`\Seen`}) {
			t.Errorf("after fetchmail --keep, big %d has flags %q, want \\Seen", i, flags)
		}
	}
	// Without keep, and fetching the seen messages again, fetchmail
	// deletes what it fetched.
	check(run("no keep fetchall"))
	if inbox := serverFolder(t, e, "INBOX"); len(inbox) != 0 {
		t.Errorf("after fetchmail without keep, INBOX holds %q", inbox)
	}
}
