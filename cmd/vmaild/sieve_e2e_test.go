package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestServeSieve: a script stored with vmaild sieve put --activate files
// mail delivered over SMTP into a folder it creates, flagged, where IMAP
// shows it; mail the script does not match stays in INBOX.
func TestServeSieve(t *testing.T) {
	d := newDaemon(t, "")
	d.start()
	d.cli("", "domain", "add", "example.com")
	d.cli("alice-secret\n", "user", "add", "alice@example.com", "--password-stdin")
	script := filepath.Join(t.TempDir(), "lists.sieve")
	os.WriteFile(script, []byte(`require ["fileinto", "mailbox", "imap4flags"];
if header :contains "list-id" "users.lists.example.org" {
  fileinto :create :flags "\\Flagged" "Lists/Users";
}
`), 0o644)
	d.cli("", "sieve", "put", "alice@example.com", "lists", script, "--activate")

	for _, m := range []string{
		"From: owner@lists.example.org\r\nTo: alice@example.com\r\nList-Id: <users.lists.example.org>\r\nSubject: digest\r\n\r\nlist mail\r\n",
		"From: bob@example.net\r\nTo: alice@example.com\r\nSubject: personal\r\n\r\nfor alice\r\n",
	} {
		if err := sendMail(t, d.addr("smtp"), nil, "sender@example.net", []string{"alice@example.com"}, m); err != nil {
			t.Fatalf("SMTP: %v\n%s", err, d.out.String())
		}
	}
	c, err := imapclient.DialStartTLS(d.addr("imap"), &imapclient.Options{TLSConfig: insecureTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.com", "alice-secret").Wait(); err != nil {
		t.Fatal(err)
	}
	for folder, want := range map[string]string{"Lists/Users": "digest", "INBOX": "personal"} {
		sel, err := c.Select(folder, nil).Wait()
		if err != nil || sel.NumMessages != 1 {
			t.Fatalf("SELECT %s: %+v, %v\n%s", folder, sel, err, d.out.String())
		}
		msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true, Flags: true}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("FETCH %s: %v", folder, err)
		}
		if !strings.Contains(msgs[0].Envelope.Subject, want) {
			t.Errorf("%s holds %q, want %q", folder, msgs[0].Envelope.Subject, want)
		}
		flagged := false
		for _, f := range msgs[0].Flags {
			flagged = flagged || f == imap.FlagFlagged
		}
		if flagged != (folder != "INBOX") {
			t.Errorf("%s: flags %v", folder, msgs[0].Flags)
		}
	}
	c.Logout().Wait()
	d.stop()
}
