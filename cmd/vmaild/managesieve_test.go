package main

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/vmaild/vmaild/backend/sievestore"
	"github.com/vmaild/vmaild/internal/testsrv"
)

// sieveClient is a small ManageSieve client: what a mail client's
// managesieve plugin sends, line by line.
type sieveClient struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dialSieve(t *testing.T, addr string) *sieveClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("ManageSieve dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &sieveClient{t: t, nc: nc, r: bufio.NewReader(nc)}
	if caps := c.response(); !strings.Contains(caps, `"STARTTLS"`) || !strings.Contains(caps, `"SIEVE" "fileinto`) {
		t.Fatalf("greeting: %q", caps)
	}
	return c
}

// response reads up to the OK, NO or BYE line.
func (c *sieveClient) response() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("ManageSieve read after %q: %v", lines, err)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if line == "OK" || strings.HasPrefix(line, "OK ") || strings.HasPrefix(line, "NO") || strings.HasPrefix(line, "BYE") {
			return strings.Join(lines, "\n")
		}
	}
}

func (c *sieveClient) cmd(s string) string {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.nc, s+"\r\n"); err != nil {
		c.t.Fatal(err)
	}
	return c.response()
}

func (c *sieveClient) startTLS() {
	c.t.Helper()
	if r := c.cmd("STARTTLS"); !strings.HasPrefix(r, "OK") {
		c.t.Fatalf("STARTTLS: %q", r)
	}
	tc := tls.Client(c.nc, insecureTLS)
	if err := tc.Handshake(); err != nil {
		c.t.Fatal(err)
	}
	c.nc, c.r = tc, bufio.NewReader(tc)
	if caps := c.response(); !strings.Contains(caps, `"SASL" "PLAIN`) {
		c.t.Fatalf("capabilities after STARTTLS: %q", caps)
	}
}

// TestManageSieveEndToEnd: scripts uploaded over ManageSieve by our own
// client and by Debian's sieve-connect land in the Dovecot layout of the
// user's mail home, `vmaild sieve test USER` runs the active one, and so
// does delivery: mail sent over SMTP is in the script's folder over IMAP.
func TestManageSieveEndToEnd(t *testing.T) {
	sieveConnect := testsrv.RequireBinary(t, "sieve-connect")
	d := newDaemon(t, "sieve:\n  max_scripts: 3\n  max_script_size: 2K\n")
	d.start()
	d.cli("", "domain", "add", "example.com")
	d.cli("zoe-secret\n", "user", "add", "zoe@example.com", "--password-stdin")
	home := filepath.Join(filepath.Dir(d.config), "data", "mail", "example.com", "zoe")

	c := dialSieve(t, d.addr("managesieve"))
	plain := base64.StdEncoding.EncodeToString([]byte("\x00zoe@example.com\x00zoe-secret"))
	if r := c.cmd(`AUTHENTICATE "PLAIN" "` + plain + `"`); !strings.HasPrefix(r, "NO (ENCRYPT-NEEDED)") {
		t.Errorf("AUTHENTICATE without TLS: %q", r)
	}
	c.startTLS()
	if r := c.cmd(`AUTHENTICATE "PLAIN" "` + plain + `"`); !strings.HasPrefix(r, "OK") {
		t.Fatalf("AUTHENTICATE: %q", r)
	}
	work := "require [\"fileinto\"];\r\nif header :contains \"subject\" \"report\" {\r\n  fileinto \"Work\";\r\n}\r\n"
	for _, st := range []struct{ send, want string }{
		{fmt.Sprintf("PUTSCRIPT \"work\" {%d+}\r\n%s", len(work), work), "OK"},
		{"PUTSCRIPT \"bad\" {18+}\r\nkeep;\r\nfrobnicate;", `NO "sieve: line 2:`},
		{`SETACTIVE "work"`, "OK"},
		{`HAVESPACE "big" 4096`, "NO (QUOTA/MAXSIZE)"},
		{`PUTSCRIPT "b" "keep;"`, "OK"},
		{`PUTSCRIPT "c" "keep;"`, "OK"},
		{`HAVESPACE "d" 10`, "NO (QUOTA/MAXSCRIPTS)"},
		{`PUTSCRIPT "d" "keep;"`, "NO (QUOTA/MAXSCRIPTS)"},
		{`PUTSCRIPT "a/b" "keep;"`, "NO"},
		{`DELETESCRIPT "work"`, "NO (ACTIVE)"},
		{`DELETESCRIPT "c"`, "OK"},
		{`RENAMESCRIPT "b" "old"`, "OK"},
		{"LISTSCRIPTS", "\"old\"\n\"work\" ACTIVE\nOK"},
		{"LOGOUT", "OK"},
	} {
		if r := c.cmd(st.send); !strings.HasPrefix(r, st.want) {
			t.Errorf("%q: %q, want %q...", st.send, r, st.want)
		}
	}

	// Pigeonhole's layout: sieve/NAME.sieve, .dovecot.sieve → sieve/work.sieve.
	if src, err := os.ReadFile(filepath.Join(home, "sieve", "work.sieve")); err != nil || string(src) != work {
		t.Errorf("sieve/work.sieve: %q, %v", src, err)
	}
	if target, err := os.Readlink(filepath.Join(home, ".dovecot.sieve")); err != nil || target != "sieve/work.sieve" {
		t.Errorf(".dovecot.sieve → %q, %v", target, err)
	}
	msg := filepath.Join(t.TempDir(), "msg.eml")
	os.WriteFile(msg, []byte("From: boss@example.org\r\nTo: zoe@example.com\r\nSubject: monthly report\r\n\r\nnumbers\r\n"), 0o600)
	if out := d.cli("", "sieve", "test", "zoe@example.com", msg); !strings.Contains(out, "store message in folder: Work") {
		t.Errorf("sieve test after a ManageSieve upload:\n%s", out)
	}

	// sieve-connect, driven as a script would: the password on a file
	// descriptor, STARTTLS with a self-signed certificate.
	local := filepath.Join(t.TempDir(), "lists.sieve")
	os.WriteFile(local, []byte("require [\"fileinto\", \"mailbox\"];\nif header :contains \"subject\" \"report\" { fileinto :create \"Lists\"; }\n"), 0o600)
	_, port, _ := net.SplitHostPort(d.addr("managesieve"))
	run := func(args ...string) string {
		t.Helper()
		all := append([]string{"--nosrv", "-s", "127.0.0.1", "-p", port, "-u", "zoe@example.com", "--passwordfd", "0", "--notlsverify", "--authmech", "PLAIN"}, args...)
		cmd := exec.Command(sieveConnect, all...)
		cmd.Stdin = strings.NewReader("zoe-secret\n")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sieve-connect %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("--upload", "--localsieve", local, "--remotesieve", "lists")
	run("--activate", "--remotesieve", "lists")
	if out := run("--list"); !strings.Contains(out, "lists") || !strings.Contains(out, "work") {
		t.Errorf("sieve-connect --list:\n%s", out)
	}
	down := filepath.Join(t.TempDir(), "down.sieve")
	run("--download", "--remotesieve", "work", "--localsieve", down)
	if src, err := os.ReadFile(down); err != nil || string(src) != work {
		t.Errorf("sieve-connect --download: %q, %v", src, err)
	}
	if target, err := os.Readlink(filepath.Join(home, ".dovecot.sieve")); err != nil || target != "sieve/lists.sieve" {
		t.Errorf(".dovecot.sieve → %q, %v", target, err)
	}
	if out := d.cli("", "sieve", "test", "zoe@example.com", msg); !strings.Contains(out, "store message in folder: Lists") {
		t.Errorf("sieve test after a sieve-connect upload:\n%s", out)
	}
	// Delivery runs the script uploaded with sieve-connect: mail over
	// SMTP lands in the folder it names, where IMAP shows it.
	report := "From: boss@example.org\r\nTo: zoe@example.com\r\nSubject: weekly report\r\n\r\nfigures\r\n"
	if err := sendMail(t, d.addr("smtp"), nil, "boss@example.org", []string{"zoe@example.com"}, report); err != nil {
		t.Fatalf("SMTP: %v", err)
	}
	ic, err := imapclient.DialStartTLS(d.addr("imap"), &imapclient.Options{TLSConfig: insecureTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login("zoe@example.com", "zoe-secret").Wait(); err != nil {
		t.Fatal(err)
	}
	for folder, n := range map[string]uint32{"Lists": 1, "INBOX": 0} {
		if sel, err := ic.Select(folder, nil).Wait(); err != nil || sel.NumMessages != n {
			t.Errorf("SELECT %s: %+v, %v, want %d messages", folder, sel, err, n)
		}
	}
	ic.Logout().Wait()

	// The daemon logs the uploads and never the password.
	if out := d.out.String(); !strings.Contains(out, "managesieve putscript") || strings.Contains(out, "zoe-secret") {
		t.Errorf("daemon log:\n%s", out)
	}
	d.stop()
}

// TestManageSieveQuotaRace: sessions uploading at once cannot both take a
// user's last script slot.
func TestManageSieveQuotaRace(t *testing.T) {
	b := &manageSieveBackend{quota: sievestore.Quota{MaxScripts: 3, MaxSize: 1 << 10}}
	home := t.TempDir()
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &sieveSession{b: b, account: "zoe@example.com", s: sievestore.Scripts{Home: home}}
			s.Put(t.Context(), fmt.Sprintf("s%d", i), []byte("keep;"))
		}()
	}
	wg.Wait()
	list, err := sievestore.Scripts{Home: home}.List()
	if err != nil || len(list) != 3 {
		t.Errorf("%d scripts stored with a quota of 3: %v", len(list), err)
	}
}
