package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeCrashDuringFanout kills `vmaild serve` with SIGKILL while it
// writes one message to an alias of ten mailboxes, restarts it, and checks
// that every mailbox ends with exactly one copy (or the copy is still
// queued): the fan-out is spooled before the first copy is written, and the
// queue's retry skips the mailboxes that already have theirs.
func TestServeCrashDuringFanout(t *testing.T) {
	for name, backend := range e2eBackends {
		t.Run(name, func(t *testing.T) { testCrashDuringFanout(t, name, backend) })
	}
}

func testCrashDuringFanout(t *testing.T, name string, backend func(testing.TB) string) {
	d, data := ownershipDaemon(t, name, backend)
	var members []string
	for i := 0; i < 10; i++ {
		u := fmt.Sprintf("m%d", i)
		d.cli("secret\n", "user", "add", u+"@example.com", "--password-stdin")
		members = append(members, u+"@example.com")
	}
	d.cli("", append([]string{"alias", "add", "ten@example.com"}, members...)...)
	copies := func(subject string) []int {
		n := make([]int, len(members))
		for i := range members {
			for _, m := range mailboxFiles(t, data, fmt.Sprintf("m%d", i)) {
				if strings.Contains(m, "Subject: "+subject+"\r\n") {
					n[i]++
				}
			}
		}
		return n
	}
	// files counts the messages of every member by name only: cheap
	// enough to poll while the fan-out runs.
	files := func() (n int) {
		for i := range members {
			for _, sub := range []string{"new", "cur"} {
				ents, _ := os.ReadDir(filepath.Join(data, "mail", "example.com", fmt.Sprintf("m%d", i), "Maildir", sub))
				n += len(ents)
			}
		}
		return n
	}
	sum := func(n []int) (s int) {
		for _, v := range n {
			s += v
		}
		return s
	}
	const rounds = 4
	for round := 0; round < rounds; round++ {
		subject := fmt.Sprintf("fan-out %d", round)
		msg := "From: sender@example.com\r\nTo: ten@example.com\r\nSubject: " + subject + "\r\n\r\n" +
			strings.Repeat("fan-out body line, long enough to take a moment to write\r\n", 2000)
		sent := make(chan error, 1)
		go func() {
			sent <- sendMail(t, d.addr("smtp"), nil, "sender@example.com", []string{"ten@example.com"}, msg)
		}()
		// Kill once 1, 4, 7, 10 copies are visible (the others are being
		// committed one by one; at 10 the 250 may not be out yet).
		deadline := time.Now().Add(time.Minute)
		for files() < round*len(members)+min(1+3*round, len(members)) {
			if time.Now().After(deadline) {
				t.Fatalf("no copy written\n%s", d.out.String())
			}
			time.Sleep(time.Millisecond)
		}
		d.cmd.Process.Kill()
		<-d.exited
		atKill := copies(subject)
		err := <-sent
		t.Logf("round %d: killed with %d of 10 copies written (client: %v)", round, sum(atKill), err)

		d.start()
		waitFor(t, d, "an empty queue", func() bool { return queued(t, data) == 0 })
		for i, n := range copies(subject) {
			if n != 1 {
				t.Errorf("round %d: %s has %d copies, want 1 (had %d at the kill)", round, members[i], n, atKill[i])
			}
		}
	}
	d.stop()
}
