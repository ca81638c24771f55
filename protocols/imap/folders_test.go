package imap

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// listed parses the LIST or LSUB replies among lines into name → attributes.
func listed(t *testing.T, lines []string, kind string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, l := range lines {
		rest, ok := strings.CutPrefix(l, "* "+kind+" (")
		if !ok {
			continue
		}
		attrs, rest, ok := strings.Cut(rest, ") ")
		_, name, ok2 := strings.Cut(rest, `"/" `)
		if !ok || !ok2 {
			t.Fatalf("cannot parse %q", l)
		}
		out[strings.Trim(name, `"`)] = strings.Fields(attrs)
	}
	return out
}

// TestSpecialFoldersSubscribed is the folder list a webmail builds: a
// client that STATUSes Drafts before it ever lists, then asks for the
// subscribed folders the ways Roundcube does (LIST (SUBSCRIBED) with
// LIST-EXTENDED, LSUB with imap_force_lsub, RETURN (SUBSCRIBED), the
// SPECIAL-USE list, then STATUS of each special folder), must find Drafts,
// Sent, Junk, Trash and INBOX subscribed. Both for a new account and for a
// Maildir that exists without the special folders (a migrated account).
func TestSpecialFoldersSubscribed(t *testing.T) {
	specials := map[string]string{"Drafts": `\Drafts`, "Sent": `\Sent`, "Junk": `\Junk`, "Trash": `\Trash`}
	for _, tc := range []struct {
		name     string
		existing bool
	}{
		{"new account", false},
		{"existing Maildir without special folders", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.existing {
				root, err := e.store.MaildirPath(testUser, "")
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range []string{"cur", "new", "tmp"} {
					if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
						t.Fatal(err)
					}
				}
			}
			r := e.raw(t)
			r.login()
			cmd := func(tag, command string) []string {
				t.Helper()
				r.send(tag + " " + command + "\r\n")
				lines := r.until(tag + " ")
				if last := lines[len(lines)-1]; !strings.HasPrefix(last, tag+" OK") {
					t.Fatalf("%s: %q", command, lines)
				}
				return lines
			}
			subscribed := func(what string, got map[string][]string, want ...string) {
				t.Helper()
				for _, n := range want {
					// LSUB lists subscribed names without an attribute
					// saying so, as Dovecot does.
					if attrs, ok := got[n]; !ok || (!strings.HasPrefix(what, "LSUB") && !slices.Contains(attrs, `\Subscribed`)) {
						t.Errorf("%s: %s not subscribed in %v", what, n, got)
					}
				}
			}

			cmd("S1", `STATUS Drafts (MESSAGES UIDNEXT)`)
			subscribed(`LIST (SUBSCRIBED) "" "*"`, listed(t, cmd("S2", `LIST (SUBSCRIBED) "" "*"`), "LIST"), "INBOX", "Drafts")
			lsub := listed(t, cmd("S3", `LSUB "" "*"`), "LSUB")
			subscribed(`LSUB "" "*"`, lsub, "INBOX", "Drafts")

			// Roundcube's login: its subscribed list in the three forms it
			// may use, the special-use list, and the folders' counters.
			if caps := strings.Join(cmd("R1", "CAPABILITY"), " "); !strings.Contains(caps, "LIST-EXTENDED") || !strings.Contains(caps, "SPECIAL-USE") {
				t.Fatalf("capabilities %q", caps)
			}
			for _, q := range []struct{ tag, command, kind string }{
				{"R2", `LIST (SUBSCRIBED) "" "*"`, "LIST"},
				{"R3", `LSUB "" "*"`, "LSUB"},
				{"R4", `LIST "" "*" RETURN (SUBSCRIBED)`, "LIST"},
			} {
				got := listed(t, cmd(q.tag, q.command), q.kind)
				subscribed(q.command, got, "INBOX", "Drafts", "Sent", "Junk", "Trash")
			}
			uses := listed(t, cmd("R5", `LIST (SPECIAL-USE) "" "*"`), "LIST")
			for name, use := range specials {
				if !slices.Contains(uses[name], use) {
					t.Errorf("LIST (SPECIAL-USE): %s without %s in %v", name, use, uses)
				}
				lines := cmd("R6", `STATUS "`+name+`" (MESSAGES UNSEEN)`)
				if !strings.HasPrefix(lines[0], "* STATUS "+name+" (MESSAGES 0 UNSEEN 0)") && !strings.HasPrefix(lines[0], `* STATUS "`+name+`" (MESSAGES 0 UNSEEN 0)`) {
					t.Errorf("STATUS %s: %q", name, lines)
				}
			}

			// The user's choice holds: an unsubscribed Drafts is not
			// subscribed again by using it, and INBOX stays listed.
			cmd("U1", `UNSUBSCRIBE Drafts`)
			cmd("U2", `UNSUBSCRIBE INBOX`)
			cmd("U3", `STATUS Drafts (MESSAGES)`)
			cmd("U4", `SELECT Drafts`)
			lsub = listed(t, cmd("U5", `LSUB "" "*"`), "LSUB")
			if _, ok := lsub["Drafts"]; ok {
				t.Errorf("unsubscribed Drafts is back: %v", lsub)
			}
			subscribed(`LSUB "" "*" after UNSUBSCRIBE`, lsub, "INBOX", "Sent", "Junk", "Trash")
			sub := listed(t, cmd("U6", `LIST "" "*" RETURN (SUBSCRIBED)`), "LIST")
			if slices.Contains(sub["Drafts"], `\Subscribed`) || !slices.Contains(sub["INBOX"], `\Subscribed`) {
				t.Errorf("RETURN (SUBSCRIBED) after UNSUBSCRIBE: %v", sub)
			}
		})
	}
}
