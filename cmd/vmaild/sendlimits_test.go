package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/protocols/sendlimit"
	"github.com/vmaild/vmaild/userdb"
	sqldir "github.com/vmaild/vmaild/userdb/sql"
)

// TestServeSendingLimits: through the daemon's submission listener, the
// n+1-th message of the hour gets 450 4.7.1 for that user only, an
// override in the SQL directory raises another user's limit, the refusals
// show in the log and the metric, and `vmaild limits` names both users.
func TestServeSendingLimits(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	d := newDaemon(t, "data_dir: "+data+"\nsending_limits:\n  account:\n    messages_per_hour: 2\n")
	d.start()
	d.cli("", "domain", "add", "example.com")
	for _, u := range []string{"zoe", "yan", "xia"} {
		d.cli(u+"-secret\n", "user", "add", u+"@example.com", "--password-stdin")
	}
	db, err := sqldir.Open(context.Background(), sqldir.Config{Driver: "sqlite", DSN: filepath.Join(data, "vmaild.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	three := int64(3)
	if err := db.SetSendLimits(context.Background(), "yan@example.com", userdb.SendLimits{MessagesPerHour: &three}); err != nil {
		t.Fatal(err)
	}

	send := func(user string) error {
		login := &[2]string{user + "@example.com", user + "-secret"}
		msg := "From: " + login[0] + "\r\nTo: xia@example.com\r\nSubject: limits\r\n\r\nhi\r\n"
		return sendMail(t, d.addr("submission"), login, login[0], []string{"xia@example.com"}, msg)
	}
	for _, step := range []struct {
		user string
		want string // "" accepted, else the start of the error
	}{
		{"zoe", ""}, {"zoe", ""}, {"zoe", "450 4.7.1"},
		{"yan", ""}, {"yan", ""}, {"yan", ""}, {"yan", "450 4.7.1"},
		{"xia", ""},
	} {
		err := send(step.user)
		var se *gosmtp.SMTPError
		switch {
		case step.want == "" && err != nil:
			t.Fatalf("%s: %v, want accepted", step.user, err)
		case step.want == "":
		case !errors.As(err, &se) || fmt.Sprintf("%d %d.%d.%d", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2]) != step.want:
			t.Fatalf("%s: %v, want %s", step.user, err, step.want)
		}
	}
	if n := metricValue(t, d.addr("metrics"), `vmaild_send_limit_refusals_total{limit="messages_per_hour",scope="account"}`); n != 2 {
		t.Errorf("refusals metric = %v, want 2", n)
	}
	if out := d.out.String(); strings.Count(out, `msg="sending limit reached" `) != 2 || !strings.Contains(out, "user=zoe@example.com limit=messages_per_hour max=2") {
		t.Errorf("the log does not name the two refusals:\n%s", out)
	}
	var ans limitsAnswer
	if err := d.cliJSON(&ans, "limits"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range ans.Senders {
		got = append(got, u.Key+" "+ofLimit(u.Messages, u.MessagesPerHour))
	}
	if want := "yan@example.com 3/3, zoe@example.com 2/2"; strings.Join(got, ", ") != want {
		t.Errorf("vmaild limits: %v, want %s", got, want)
	}
	if out := d.cli("", "limits", "--all"); !strings.Contains(out, "xia@example.com") || !strings.Contains(out, "directory") {
		t.Errorf("vmaild limits --all:\n%s", out)
	}

	// A reload raises the default: zoe sends again, yan's own limit
	// stays.
	cfg, err := os.ReadFile(d.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.config, []byte(strings.Replace(string(cfg), "messages_per_hour: 2", "messages_per_hour: 4", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	wantLines(t, "reload", d.cli("", "reload"), "applied: sending_limits")
	if err := send("zoe"); err != nil {
		t.Errorf("zoe after the reload: %v", err)
	}
	if err := send("yan"); err == nil {
		t.Error("yan after the reload: accepted, want his own limit of 3")
	}
}

// TestLimitsSetShow: `vmaild limits set` writes an account's and a
// domain's limits into SQL, `vmaild limits show` tells what is in force and
// where each limit comes from.
func TestLimitsSetShow(t *testing.T) {
	c := newCLI(t, sqliteConfig(t.TempDir()))
	c.ok("", "domain", "add", "example.com")
	c.ok("bob-secret\n", "user", "add", "bob@example.com", "--password-stdin")
	c.ok("", "limits", "set", "bob@example.com", "--messages-per-hour", "7", "--recipients-per-hour", "0")
	c.ok("", "limits", "set", "example.com", "--recipients-per-message", "20")
	out := c.ok("", "limits", "show", "bob@example.com")
	wantLines(t, "limits show", out,
		"bob@example.com  7 (directory)",
		"unlimited (directory)",
		"@example.com     unlimited (config)",
		"20 (directory)")
	var rows []limitsShowRow
	if err := json.Unmarshal([]byte(c.ok("", "limits", "show", "bob@example.com", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Limits != (sendlimit.Limits{MessagesPerHour: 7, RecipientsPerHour: 0}) ||
		rows[1].Limits.RecipientsPerMessage != 20 || rows[0].From[sendlimit.MessagesPerHour] != "directory" {
		t.Errorf("limits show --json: %+v", rows)
	}
	c.ok("", "limits", "set", "bob@example.com", "--inherit")
	wantLines(t, "after --inherit", c.ok("", "limits", "show", "bob@example.com"), "bob@example.com  500 (config)")
	for _, args := range [][]string{
		{"limits", "set", "bob@example.com"},
		{"limits", "set", "bob@example.com", "--messages-per-hour", "-1"},
		{"limits", "set", "nobody@example.com", "--messages-per-hour", "1"},
		{"limits", "set", "other.test", "--messages-per-hour", "1"},
		{"limits", "show", "nobody@example.com"},
	} {
		c.fails("", args...)
	}
}
