package main

import (
	gosql "database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/queue"
	"github.com/vmaild/vmaild/backend/queue/queuetest"
	"github.com/vmaild/vmaild/userdb/password"
)

// run is cli for a command that may fail: its output and error.
func (d *e2eDaemon) run(args ...string) (string, error) {
	d.t.Helper()
	out, err := exec.Command(d.bin, append([]string{"-c", d.config}, args...)...).CombinedOutput()
	return string(out), err
}

// cliJSON runs a command with --json and decodes its standard output
// (standard error may say which configuration it read).
func (d *e2eDaemon) cliJSON(v any, args ...string) error {
	d.t.Helper()
	cmd := exec.Command(d.bin, append([]string{"-c", d.config}, append(args, "--json")...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("vmaild %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return json.Unmarshal(out, v)
}

var queueID = regexp.MustCompile(`\b[0-9a-f]{32}\b`)

// imapSession logs in over STARTTLS; the client stays open (closed at the
// end of the test) so that it shows in status.
func imapSession(t *testing.T, addr, user, pass string) (*imapclient.Client, error) {
	t.Helper()
	c, err := imapclient.DialStartTLS(addr, &imapclient.Options{TLSConfig: insecureTLS})
	if err != nil {
		t.Fatalf("IMAP dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.Login(user, pass).Wait()
}

// TestServeControlChannel drives the control channel of a running `vmaild
// serve` with the CLI as an admin would: while the remote MX defers, the
// queue commands hold, show, retry, release and delete live mail, and the
// server keeps accepting and serving mail meanwhile; auth-cache flush makes
// a password changed behind the cache's back take effect at once; status
// lists the listeners and their connections; reload applies the log level.
func TestServeControlChannel(t *testing.T) {
	dns := queuetest.NewDNS(t)
	var down atomic.Bool
	down.Store(true)
	sink := queuetest.NewSink(t, queuetest.SinkOptions{Rcpt: func(string) error {
		if down.Load() {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "remote is down"}
		}
		return nil
	}})
	dns.MX("remote.test", 10, "mx.remote.test")
	dns.A("mx.remote.test", "127.0.0.1")
	data := filepath.Join(t.TempDir(), "data")
	// Retries an hour apart: only the admin's commands try again.
	d := newDaemon(t, fmt.Sprintf("data_dir: %s\nqueue:\n  resolver: %s\n  port: %d\n  retry_min: 1h\n  retry_max: 1h\n", data, dns.Addr, sink.Port))
	d.start()
	d.cli("", "domain", "add", "example.com")
	d.cli("secret\n", "user", "add", "alice@example.com", "--password-stdin")

	if fi, err := os.Lstat(filepath.Join(data, "control.sock")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v, %v", fi, err)
	}

	// Three messages for the remote, each deferred at its first attempt.
	var ids []string
	for i, rcpt := range []string{"bob@remote.test", "carol@remote.test", "dave@remote.test"} {
		msg := fmt.Sprintf("From: alice@example.com\r\nTo: %s\r\nSubject: queued %d\r\n\r\nbody %d\r\n", rcpt, i, i)
		if err := sendMail(t, d.addr("smtp"), nil, "alice@example.com", []string{rcpt}, msg); err != nil {
			t.Fatalf("relay to %s: %v", rcpt, err)
		}
		var id string
		waitFor(t, d, "message "+rcpt+" queued and deferred", func() bool {
			for _, line := range strings.Split(d.cli("", "queue", "list"), "\n") {
				if m := queueID.FindString(line); m != "" && !slices.Contains(ids, m) {
					id = m
				}
			}
			return id != "" && strings.Contains(d.cli("", "queue", "show", id), "remote is down")
		})
		ids = append(ids, id)
	}
	bob := ids[0]

	// hold: shown as held, and show has the message, live.
	if out := d.cli("", "queue", "hold", bob); !strings.Contains(out, "held "+bob) {
		t.Fatalf("hold: %s", out)
	}
	out := d.cli("", "queue", "show", bob)
	wantLines(t, "show of a held message", out, "next attempt:", "held", "bob@remote.test", "451", "Subject: queued 0", "body 0")
	refuseLines(t, "show of a held message", out, "message not shown")
	wantLines(t, "list", d.cli("", "queue", "list"), bob, "held", "3 queued")
	// --json: the same, for scripts; it parses and round-trips.
	var items []queue.Item
	if err := d.cliJSON(&items, "queue", "list"); err != nil || len(items) != 3 {
		t.Fatalf("queue list --json: %v, %d items", err, len(items))
	}
	if items[0].ID != bob || !items[0].Held || items[0].Recipients[0].Addr != "bob@remote.test" || items[0].Recipients[0].ReplyCode != 451 {
		t.Errorf("queue list --json: first item %+v", items[0])
	}
	if again, _ := json.Marshal(items); !json.Valid(again) {
		t.Error("queue list --json does not round-trip")
	}
	var shown queueShowAnswer
	if err := d.cliJSON(&shown, "queue", "show", bob); err != nil ||
		shown.Item.ID != bob || !strings.Contains(string(shown.Message), "body 0") {
		t.Errorf("queue show --json: %+v, %v", shown, err)
	}
	if out, err := d.run("queue", "retry", bob); err == nil || !strings.Contains(out, "on hold") {
		t.Errorf("retry of a held message: %v\n%s", err, out)
	}

	// The remote is back: flush sends carol's and dave's, not held bob's.
	down.Store(false)
	d.cli("", "queue", "flush")
	waitFor(t, d, "carol and dave delivered", func() bool {
		return delivered(sink, "carol@remote.test") && delivered(sink, "dave@remote.test")
	})
	waitFor(t, d, "carol and dave done", func() bool { return strings.Contains(d.cli("", "queue", "list"), "1 queued") })
	if delivered(sink, "bob@remote.test") {
		t.Fatal("held bob delivered by flush")
	}

	// The server serves meanwhile: local delivery and an IMAP login.
	if err := sendMail(t, d.addr("smtp"), nil, "x@remote.test", []string{"alice@example.com"}, "Subject: local\r\n\r\nhi\r\n"); err != nil {
		t.Fatalf("local delivery while the queue is worked on: %v", err)
	}
	waitFor(t, d, "the local message", func() bool { return len(mailboxFiles(t, data, "alice")) == 1 })
	idle, err := imapSession(t, d.addr("imap"), "alice@example.com", "secret")
	if err != nil {
		t.Fatalf("IMAP login: %v", err)
	}

	// status: every listener with its address; the IMAP client is one
	// logged-in connection.
	out = d.cli("", "status")
	for _, l := range []string{"smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "managesieve"} {
		if !regexp.MustCompile(`(?m)^` + l + `\s+` + regexp.QuoteMeta(d.addr(l)) + `\s+\d+\s+\d+`).MatchString(out) {
			t.Errorf("status lacks listener %s at %s:\n%s", l, d.addr(l), out)
		}
	}
	if !regexp.MustCompile(`(?m)^imap\s+\S+\s+1\s+1\s*$`).MatchString(out) {
		t.Errorf("status does not count the logged-in IMAP client:\n%s", out)
	}
	wantLines(t, "status", out, "1 messages (1 held)")
	var st statusAnswer
	if err := d.cliJSON(&st, "status"); err != nil || len(st.Gate.Listeners) != 8 || st.Held != 1 {
		t.Errorf("status --json: %+v, %v", st, err)
	}
	idle.Logout()

	// release, then retry bob alone: delivered.
	if out := d.cli("", "queue", "release", bob); !strings.Contains(out, "released "+bob) {
		t.Fatalf("release: %s", out)
	}
	d.cli("", "queue", "retry", bob, "bob@remote.test")
	waitFor(t, d, "bob delivered", func() bool { return delivered(sink, "bob@remote.test") })
	waitFor(t, d, "an empty queue", func() bool { return strings.Contains(d.cli("", "queue", "list"), "0 queued") })

	// delete: a new deferred message is removed, never delivered.
	down.Store(true)
	if err := sendMail(t, d.addr("smtp"), nil, "alice@example.com", []string{"erin@remote.test"}, "Subject: doomed\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	var erin string
	waitFor(t, d, "erin's message deferred", func() bool {
		erin = queueID.FindString(d.cli("", "queue", "list"))
		return erin != "" && strings.Contains(d.cli("", "queue", "show", erin), "remote is down")
	})
	if out := d.cli("", "queue", "delete", erin); !strings.Contains(out, "deleted "+erin) {
		t.Fatalf("delete: %s", out)
	}
	if out, err := d.run("queue", "show", erin); err == nil || !strings.Contains(out, "no such item") {
		t.Errorf("show of a deleted message: %v\n%s", err, out)
	}
	down.Store(false)
	d.cli("", "queue", "flush")
	if strings.Contains(d.cli("", "queue", "list"), erin) || queued(t, data) != 0 {
		t.Error("the deleted message is still queued")
	}

	// auth-cache flush: alice's new password, set in SQL behind the
	// server's back, works at once after the flush; the cached old one
	// no longer does.
	hash, err := password.Hash(password.DefaultScheme, "new-secret")
	if err != nil {
		t.Fatal(err)
	}
	db, err := gosql.Open("sqlite", filepath.Join(data, "vmaild.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE accounts SET password = ? WHERE address = ?", hash, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := imapSession(t, d.addr("imap"), "alice@example.com", "secret"); err != nil {
		t.Fatalf("the cached old password: %v (is the cache in the way at all?)", err)
	}
	if out := d.cli("", "auth-cache", "flush", "Alice@Example.COM"); !strings.Contains(out, "flushed alice@example.com") {
		t.Fatalf("auth-cache flush: %s", out)
	}
	if _, err := imapSession(t, d.addr("imap"), "alice@example.com", "secret"); err == nil {
		t.Error("the old password still logs in after auth-cache flush")
	}
	if _, err := imapSession(t, d.addr("imap"), "alice@example.com", "new-secret"); err != nil {
		t.Errorf("the new password after auth-cache flush: %v", err)
	}
	if out := d.cli("", "auth-cache", "flush"); !strings.Contains(out, "whole directory cache") {
		t.Errorf("auth-cache flush of everything: %s", out)
	}

	// reload: the log level applies, a queue change waits for a restart.
	cfg, err := os.ReadFile(d.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), "level: debug", "level: warn", 1) + "  workers: 3\n")
	if err := os.WriteFile(d.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	out = d.cli("", "reload")
	wantLines(t, "reload", out, "applied: log.level", "needs a restart: queue")
	wantLines(t, "status after reload", d.cli("", "status"), "log level: WARN")

	// Every change is in the log, with who made it.
	logs := d.out.String()
	for _, what := range []string{`msg="queue hold"`, `msg="queue release"`, `msg="queue retry"`, `msg="queue delete"`, `msg="directory cache flushed"`} {
		if !regexp.MustCompile(regexp.QuoteMeta(what) + `.*peer_uid=` + fmt.Sprint(os.Getuid())).MatchString(logs) {
			t.Errorf("the log has no %s line with the caller's uid", what)
		}
	}
	d.stop()

	// Without a server: status says so (exit 3), the queue commands work
	// on the files.
	if out, err := d.run("status"); !exitCode(err, 3) || !strings.Contains(out, "not running") {
		t.Errorf("status without a server: %v\n%s", err, out)
	}
	wantLines(t, "list without a server", d.cli("", "queue", "list"), "0 queued")
}

func exitCode(err error, code int) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == code
}

// TestControlConfig: the socket defaults into the data folder; the mode is
// 0600 or 0660 however YAML or the environment spell it; a path too long
// for a unix socket is refused before serve tries it.
func TestControlConfig(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want os.FileMode
	}{
		{"0600", 0o600}, {"600", 0o600}, {"0660", 0o660}, {"660", 0o660},
		{"432", 0o660}, // an unquoted 0660 in YAML
		{"0644", 0}, {"0666", 0}, {"rw", 0}, {"", 0},
	} {
		c := ControlConfig{Mode: tc.mode}
		problems := c.resolve("/var/lib/vmaild")
		got, err := c.fileMode()
		if tc.want == 0 {
			if err == nil || len(problems) != 1 {
				t.Errorf("mode %q accepted as %o (%v)", tc.mode, got, problems)
			}
			continue
		}
		if err != nil || got != tc.want || len(problems) != 0 {
			t.Errorf("mode %q: %o, %v, %v; want %o", tc.mode, got, err, problems, tc.want)
		}
		if c.Socket != "/var/lib/vmaild/control.sock" {
			t.Errorf("default socket %q", c.Socket)
		}
	}
	long := ControlConfig{Mode: "0600", Socket: "/" + strings.Repeat("x", maxSocketPath)}
	if p := long.resolve("/d"); len(p) != 1 || !strings.Contains(p[0], "shorter path") {
		t.Errorf("a socket path of %d bytes: %v", len(long.Socket), p)
	}
}
