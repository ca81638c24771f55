package imap

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vmaild/vmaild/internal/testdovecot"
)

// run sends one command on the raw client and returns its untagged lines
// (without "* ") and its tagged completion (without the tag).
func (r *raw) run(tag, cmd string) (untagged []string, done string) {
	r.t.Helper()
	r.send(tag + " " + cmd + "\r\n")
	for _, l := range r.until(tag + " ") {
		if s, ok := strings.CutPrefix(l, "* "); ok {
			untagged = append(untagged, s)
		} else if s, ok := strings.CutPrefix(l, tag+" "); ok {
			done = s
		}
	}
	return untagged, done
}

// createUseCases are CREATE-SPECIAL-USE commands and the answer vmaild
// gives: "OK", or "NO [USEATTR]", "NO [ALREADYEXISTS]".
var createUseCases = []struct {
	cmd  string
	want string
	// dovecot is Dovecot's answer where vmaild deliberately differs
	// ("" when they agree).
	dovecot string
}{
	{cmd: `CREATE Archive (USE (\Archive))`, want: "OK"},
	{cmd: `CREATE "Old Sent" (USE (\sent))`, want: "OK"},
	{cmd: `CREATE Spam (USE (\Junk))`, want: "OK"},
	{cmd: `CREATE Deep`, want: "OK"},
	{cmd: `CREATE Deep/Bin (USE (\Trash))`, want: "OK"},
	{cmd: `CREATE Plain (USE ())`, want: "OK"},
	{cmd: `CREATE Archive (USE (\Archive))`, want: "NO [ALREADYEXISTS]"},
	// Dovecot 2.3 does not advertise CREATE-SPECIAL-USE: it answers OK
	// to any CREATE (USE ...) and lists none of the uses afterwards. vmaild refuses what it would
	// not honour, as RFC 6154 §3 asks.
	{cmd: `CREATE Imp (USE (\Important))`, want: "NO [USEATTR]", dovecot: "OK"},
	// Not a use-attr at all (no backslash): wire's grammar says BAD.
	{cmd: `CREATE Word (USE (Archive))`, want: "BAD [CLIENTBUG]", dovecot: "OK"},
	// Virtual folders vmaild does not build.
	{cmd: `CREATE AllMail (USE (\All))`, want: "NO [USEATTR]", dovecot: "OK"},
	{cmd: `CREATE Starred (USE (\Flagged))`, want: "NO [USEATTR]", dovecot: "OK"},
	// One use per folder: a LIST reports at most one.
	{cmd: `CREATE Two (USE (\Archive \Drafts))`, want: "NO [USEATTR]", dovecot: "OK"},
}

// createUseFollowUps change the tree after createUseCases; the uses must
// follow RENAME and go with DELETE.
var createUseFollowUps = []string{
	`RENAME Archive Archives/2026`,
	`RENAME Deep Deeper`,
	`DELETE Spam`,
	`CREATE Spam`,
}

var createUseLists = []string{
	`LIST (SPECIAL-USE) "" "*"`,
	`LIST "" "*" RETURN (SPECIAL-USE)`,
	`LIST "" "*"`,
}

// answerClass keeps an answer's status and response code.
func answerClass(done string) string {
	status, rest, _ := strings.Cut(done, " ")
	if status != "OK" && strings.HasPrefix(rest, "[") {
		code, _, _ := strings.Cut(rest, "]")
		return status + " " + code + "]"
	}
	return status
}

// createdUses are the uses vmaild lists after createUseCases and
// createUseFollowUps besides the configured ones; Dovecot lists none.
var createdUses = map[string]string{
	"Archives/2026": `\archive`, "Old Sent": `\sent`, "Deeper/Bin": `\trash`,
}

// TestCreateSpecialUse sends the same CREATE (USE ...) commands, then
// renames and deletes, to vmaild and to a private Dovecot, and compares
// the answers and the LISTs that follow. The deliberate differences are
// in createUseCases and createdUses: with them taken out, the LISTs are
// the same.
func TestCreateSpecialUse(t *testing.T) {
	srv := testdovecot.StartWith(t, testdovecot.Options{Config: dovecotListConf +
		"mail_attribute_dict = file:%h/dovecot-attributes\n"})
	dc := srv.Login(t)
	e := newEnv(t)
	r := e.raw(t)
	r.login()

	for i, c := range createUseCases {
		_, done := r.run(fmt.Sprintf("c%d", i), c.cmd)
		if got := answerClass(done); got != c.want {
			t.Errorf("%s: %q, want %s", c.cmd, done, c.want)
		}
		_, err := dc.Run(c.cmd)
		dov := "OK"
		if err != nil {
			_, tagged, _ := strings.Cut(err.Error(), ": t")
			_, tagged, _ = strings.Cut(tagged, " ")
			dov = answerClass(tagged)
		}
		want := c.dovecot
		if want == "" {
			want = c.want
		}
		if dov != want {
			t.Errorf("Dovecot %s: %q (%v), want %s", c.cmd, dov, err, want)
		}
		if c.dovecot != "" && dov == "OK" {
			// Keep the trees alike for the LISTs.
			name := strings.Fields(c.cmd)[1]
			if _, err := dc.Run("DELETE " + name); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, c := range createUseFollowUps {
		if _, done := r.run(fmt.Sprintf("f%d", i), c); !strings.HasPrefix(done, "OK") {
			t.Errorf("%s: %q", c, done)
		}
		if _, err := dc.Run(c); err != nil {
			t.Errorf("Dovecot %s: %v", c, err)
		}
	}
	for i, c := range createUseLists {
		ours, done := r.run(fmt.Sprintf("l%d", i), c)
		if !strings.HasPrefix(done, "OK") {
			t.Fatalf("%s: %q", c, done)
		}
		theirs, err := dc.Run(c)
		if err != nil {
			t.Fatal(err)
		}
		norm := func(lines []string) []string {
			out := make([]string, len(lines))
			for i, l := range lines {
				out[i] = normalizeListLine(t, l)
			}
			slices.Sort(out)
			return out
		}
		var seen []string
		o := norm(ours)
		for i, l := range o {
			for name, use := range createdUses {
				if strings.HasPrefix(l, "LIST "+name+" (") && strings.Contains(l, use) {
					seen = append(seen, name)
					open, close := strings.IndexByte(l, '('), strings.IndexByte(l, ')')
					attrs := slices.DeleteFunc(strings.Fields(l[open+1:close]), func(a string) bool { return a == use })
					l = l[:open+1] + strings.Join(attrs, " ") + l[close:]
					if strings.Contains(c, "(SPECIAL-USE)") && !strings.Contains(c, "RETURN") {
						l = "" // selected for its use alone
					}
				}
			}
			o[i] = l
		}
		o = slices.DeleteFunc(o, func(l string) bool { return l == "" })
		if len(seen) != len(createdUses) {
			t.Errorf("%s: uses listed on %q, want %v", c, seen, createdUses)
		}
		if d := norm(theirs); !slices.Equal(o, d) {
			t.Errorf("%s:\n  ours:    %q\n  Dovecot: %q", c, o, d)
		}
	}
}
