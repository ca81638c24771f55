package main

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/userdb"
)

// TestQuotaRecalc delivers into Maildirs with the store, spoils the usage
// counters, and has `quota recalc` measure them back.
func TestQuotaRecalc(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	c := newCLI(t, sqliteConfig(data))
	c.ok("", "domain", "add", "example.com")
	for _, u := range []string{"alice", "bob", "carol"} {
		c.ok(u+"-pw\n", "user", "add", u+"@example.com", "--password-stdin")
	}
	// carol keeps her mail elsewhere, as a Maildir override says.
	d := openDir(t, c.configPath)
	carolDir := filepath.Join(t.TempDir(), "carol", "Maildir")
	if _, err := d.accounts.PutAccount(ctx, userdb.Account{Address: "carol@example.com", Active: true, Maildir: carolDir}, ""); err != nil {
		t.Fatal(err)
	}

	// The store as serve builds it: root data_dir/mail, the default
	// path template.
	st := &store.Store{Root: filepath.Join(data, "mail")}
	var aliceBytes int64
	for i, folder := range []string{"", "", "Sent"} {
		msg := "Subject: " + strings.Repeat("x", 100*(i+1)) + "\r\n\r\nhello\r\n"
		dl, err := st.Deliver(ctx, store.Recipient{Address: "alice@example.com", Folder: folder}, strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		aliceBytes += dl.Size
	}
	dl, err := st.Deliver(ctx, store.Recipient{Address: "carol@example.com", Maildir: carolDir}, strings.NewReader("Subject: hi\r\n\r\nhi\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	carolBytes := dl.Size

	spoil := func() {
		t.Helper()
		for _, a := range []string{"alice@example.com", "bob@example.com", "carol@example.com"} {
			if err := d.sql.SetUsage(ctx, a, userdb.Usage{Bytes: 12345, Messages: 99}); err != nil {
				t.Fatal(err)
			}
		}
	}
	usage := func(addr string) userdb.Usage {
		t.Helper()
		u, err := d.sql.Usage(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}

	// One account: only it is measured.
	spoil()
	out := c.ok("", "quota", "recalc", "alice@example.com")
	wantLines(t, "recalc alice", out, "alice@example.com", "12345")
	if got, want := usage("alice@example.com"), (userdb.Usage{Bytes: aliceBytes, Messages: 3}); got != want {
		t.Errorf("alice after recalc: %+v, want %+v", got, want)
	}
	if got := usage("bob@example.com"); got.Bytes != 12345 {
		t.Errorf("recalc of alice changed bob: %+v", got)
	}
	wantQuotaRow(t, c, "alice@example.com", strconv.FormatInt(aliceBytes, 10), "-", "3", "-")

	// Every account: bob never received mail, carol's Maildir is her own.
	spoil()
	out = c.ok("", "quota", "recalc")
	wantLines(t, "recalc all", out, "alice@example.com", "bob@example.com", "carol@example.com")
	for addr, want := range map[string]userdb.Usage{
		"alice@example.com": {Bytes: aliceBytes, Messages: 3},
		"bob@example.com":   {},
		"carol@example.com": {Bytes: carolBytes, Messages: 1},
	} {
		if got := usage(addr); got != want {
			t.Errorf("%s after recalc: %+v, want %+v", addr, got, want)
		}
	}

	if msg := c.fails("", "quota", "recalc", "nobody@example.com"); !strings.Contains(msg, "not found") {
		t.Errorf("recalc of an unknown account: %q", msg)
	}
	// A store root that does not exist would zero everybody: refused.
	if msg := c.fails("", "quota", "recalc", "--store.root", filepath.Join(data, "elsewhere")); !strings.Contains(msg, "store.root") {
		t.Errorf("recalc with a missing store root: %q", msg)
	}
	if got := usage("alice@example.com"); got.Messages != 3 {
		t.Errorf("a refused recalc changed alice: %+v", got)
	}
}
