package imap

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	goimap "github.com/emersion/go-imap/v2"
)

// TestCondstoreResync is a client's resynchronisation of a folder it saw
// before (RFC 7162): go-imap's client selects with CONDSTORE and fetches
// with CHANGEDSINCE, and only the messages another session changed come
// back; a QRESYNC SELECT (written raw: go-imap's client does not enable
// QRESYNC) reports the expunged UID as VANISHED (EARLIER) and the changed
// messages' flags, nothing else.
func TestCondstoreResync(t *testing.T) {
	e := newEnv(t)
	const n = 50
	for i := 0; i < n; i++ {
		e.deliver(t, "INBOX", fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i))
	}

	c := e.login(t, nil)
	sel, err := c.Select("INBOX", &goimap.SelectOptions{CondStore: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.HighestModSeq == 0 {
		t.Fatal("SELECT (CONDSTORE) gave no HIGHESTMODSEQ")
	}
	validity, before := sel.UIDValidity, sel.HighestModSeq
	c.Logout().Wait()

	// Another session changes three messages and expunges one.
	o := e.raw(t)
	o.login()
	o.send("S1 SELECT INBOX\r\n")
	o.until("S1 ")
	o.send("S2 UID STORE 3,17,40 +FLAGS (\\Flagged)\r\n")
	o.until("S2 ")
	o.send("S3 UID STORE 25 +FLAGS (\\Deleted)\r\nS4 EXPUNGE\r\n")
	o.until("S4 ")
	o.send("S5 LOGOUT\r\n")

	c = e.login(t, nil)
	sel, err = c.Select("INBOX", &goimap.SelectOptions{CondStore: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.HighestModSeq <= before {
		t.Fatalf("HIGHESTMODSEQ %d after changes, was %d", sel.HighestModSeq, before)
	}
	var all goimap.UIDSet
	all.AddRange(1, 0)
	changed, err := c.Fetch(all, &goimap.FetchOptions{UID: true, Flags: true, ChangedSince: before}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var got []goimap.UID
	for _, m := range changed {
		got = append(got, m.UID)
		if m.ModSeq <= before {
			t.Errorf("UID %d: MODSEQ %d not above %d", m.UID, m.ModSeq, before)
		}
	}
	if fmt.Sprint(got) != "[3 17 40]" {
		t.Errorf("CHANGEDSINCE %d returned UIDs %v, want [3 17 40]", before, got)
	}
	c.Logout().Wait()

	// QRESYNC: one round trip tells what vanished and what changed.
	q := e.raw(t)
	q.login()
	q.send("Q1 ENABLE QRESYNC\r\n")
	if l := q.until("Q1 "); !strings.Contains(strings.Join(l, "\n"), "* ENABLED QRESYNC") {
		t.Fatalf("ENABLE QRESYNC: %q", l)
	}
	q.send(fmt.Sprintf("Q2 SELECT INBOX (QRESYNC (%d %d 1:%d))\r\n", validity, before, n))
	lines := q.until("Q2 ")
	var vanished []string
	fetched := map[string]bool{}
	fetchRE := regexp.MustCompile(`^\* \d+ FETCH \(.*UID (\d+)`)
	for _, l := range lines {
		if strings.HasPrefix(l, "* VANISHED") {
			vanished = append(vanished, l)
		}
		if m := fetchRE.FindStringSubmatch(l); m != nil {
			fetched[m[1]] = true
			if !strings.Contains(l, "MODSEQ (") || !strings.Contains(l, `\Flagged`) {
				t.Errorf("QRESYNC FETCH without MODSEQ or the new flag: %q", l)
			}
		}
	}
	if len(vanished) != 1 || vanished[0] != "* VANISHED (EARLIER) 25" {
		t.Errorf("VANISHED lines %q, want [* VANISHED (EARLIER) 25]", vanished)
	}
	if len(fetched) != 3 || !fetched["3"] || !fetched["17"] || !fetched["40"] {
		t.Errorf("QRESYNC fetched UIDs %v, want 3, 17 and 40\n%s", fetched, strings.Join(lines, "\n"))
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "Q2 OK [READ-WRITE]") {
		t.Errorf("SELECT (QRESYNC) answered %q", last)
	}

	// With QRESYNC enabled, expunges are announced as VANISHED.
	q.send("Q3 UID STORE 41 +FLAGS.SILENT (\\Deleted)\r\nQ4 EXPUNGE\r\n")
	lines = q.until("Q4 ")
	joined := strings.Join(lines, "\n")
	if !strings.Contains(joined, "* VANISHED 41") || strings.Contains(joined, " EXPUNGE\r") {
		t.Errorf("EXPUNGE under QRESYNC: %q", lines)
	}
	if !regexp.MustCompile(`Q4 OK \[HIGHESTMODSEQ \d+\]`).MatchString(lines[len(lines)-1]) {
		t.Errorf("EXPUNGE under CONDSTORE without HIGHESTMODSEQ: %q", lines[len(lines)-1])
	}
	// A conditional STORE on a message changed since refuses it.
	q.send("Q5 UID STORE 3 (UNCHANGEDSINCE " + strconv.FormatUint(before, 10) + ") +FLAGS (\\Seen)\r\n")
	lines = q.until("Q5 ")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "Q5 OK [MODIFIED 3]") {
		t.Errorf("conditional STORE of a changed message: %q", lines)
	}
}

// TestVanishedStar: UID FETCH 1:* (FLAGS) (CHANGEDSINCE m VANISHED) reports
// the UIDs expunged since m, "*" standing for the highest UID.
func TestVanishedStar(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 5; i++ {
		e.deliver(t, "INBOX", fmt.Sprintf("Subject: m%d\r\n\r\nbody\r\n", i))
	}
	q := e.raw(t)
	q.login()
	q.send("V1 ENABLE QRESYNC\r\nV2 SELECT INBOX\r\n")
	lines := q.until("V2 ")
	var before uint64
	for _, l := range lines {
		if m := regexp.MustCompile(`HIGHESTMODSEQ (\d+)`).FindStringSubmatch(l); m != nil {
			before, _ = strconv.ParseUint(m[1], 10, 64)
		}
	}
	if before == 0 {
		t.Fatalf("no HIGHESTMODSEQ in %q", lines)
	}
	o := e.raw(t)
	o.login()
	o.send("O1 SELECT INBOX\r\nO2 UID STORE 2,5 +FLAGS.SILENT (\\Deleted)\r\nO3 EXPUNGE\r\n")
	o.until("O3 ")
	// The session hears of the expunges first (NOOP), as a client that
	// reconnects would not have: VANISHED (EARLIER) is about messages
	// no longer in the session's view.
	q.send("V3 NOOP\r\n")
	if lines = q.until("V3 "); !slices.Contains(lines, "* VANISHED 2,5") {
		t.Errorf("NOOP after another session's EXPUNGE: %q", lines)
	}
	q.send(fmt.Sprintf("V4 UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)\r\n", before))
	lines = q.until("V4 ")
	if !slices.Contains(lines, "* VANISHED (EARLIER) 2,5") {
		t.Errorf("UID FETCH 1:* VANISHED: %q", lines)
	}
}
