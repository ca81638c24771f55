package store

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildCrashHelper compiles internal/crashdeliver once per test run.
func buildCrashHelper(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	bin := filepath.Join(t.TempDir(), "crashdeliver")
	cmd := exec.Command(goBin, "build", "-o", bin, "./internal/crashdeliver")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build helper: %v\n%s", err, out)
	}
	return bin
}

// acked is what the helper reported as done before it was killed.
type acked struct {
	delivered map[string]bool // base names
	appended  map[uint32]bool
	deleting  map[uint32]bool // delete started, maybe not finished
	deleted   map[uint32]bool
}

// runAndKill starts the helper, lets it work for a random moment and kills
// it with SIGKILL, collecting the lines it printed.
func runAndKill(t *testing.T, bin, root, mode string, seed uint64, after time.Duration, a *acked) {
	t.Helper()
	cmd := exec.Command(bin, "-root", root, "-mode", mode, "-seed", strconv.FormatUint(seed, 10))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if l := <-lines; l != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper: %q %s", l, stderr.String())
	}
	time.Sleep(after)
	cmd.Process.Signal(syscall.SIGKILL)
	for l := range lines {
		op, arg, _ := strings.Cut(l, " ")
		switch op {
		case "D":
			a.delivered[arg] = true
		case "A", "X", "x":
			n, err := strconv.ParseUint(arg, 10, 32)
			if err != nil {
				t.Fatalf("helper line %q", l)
			}
			switch op {
			case "A":
				a.appended[uint32(n)] = true
			case "x":
				a.deleting[uint32(n)] = true
			default:
				a.deleted[uint32(n)] = true
			}
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("helper ended on its own (%v): %s", err, stderr.String())
	}
}

// checkAfterCrash opens the tree like the next process would and checks
// the invariants: no partial message, tmp/ cleaned, every acknowledged
// delivery present once, acknowledged appends present under their UID,
// acknowledged deletes gone, the index agreeing with the files, and
// HIGHESTMODSEQ never lower than after the previous crash, with every
// message's modseq at or below it.
func checkAfterCrash(t *testing.T, root string, a *acked, validity *uint32, highest *uint64) (tmpLeft int) {
	t.Helper()
	ctx := context.Background()
	if ents, err := os.ReadDir(filepath.Join(root, "example.org", "crash", "Maildir", "tmp")); err == nil {
		tmpLeft = len(ents)
	}
	s := &Store{Root: root, TmpMaxAge: time.Nanosecond}
	mb, err := s.OpenMailbox(ctx, Account{Address: "crash@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := mb.Select(ctx, "INBOX", true)
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer f.Close()
	if *validity == 0 {
		*validity = f.UIDValidity()
	} else if f.UIDValidity() != *validity {
		t.Fatalf("UIDVALIDITY changed %d → %d: the index was thrown away", *validity, f.UIDValidity())
	}
	if h := f.HighestModSeq(); h < *highest {
		t.Fatalf("HIGHESTMODSEQ went back %d → %d", *highest, h)
	} else {
		*highest = h
	}
	for _, m := range f.Messages() {
		if m.ModSeq == 0 || m.ModSeq > *highest {
			t.Errorf("uid %d modseq %d, HIGHESTMODSEQ %d", m.UID, m.ModSeq, *highest)
		}
	}
	dir := mb.Dir()
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ not cleaned: %d files", len(ents))
	}
	files := map[string]string{} // base → path
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range ents {
			base, _ := splitName(de.Name())
			if _, dup := files[base]; dup {
				t.Errorf("message %s twice", base)
			}
			p := filepath.Join(dir, sub, de.Name())
			files[base] = p
			fi, _ := de.Info()
			if n, ok := sizeFromName(base); !ok || n != fi.Size() {
				t.Errorf("partial or unnamed message %s: %d octets", p, fi.Size())
			}
		}
	}
	for name := range a.delivered {
		if _, ok := files[name]; !ok {
			// It may have been deleted by an acknowledged delete.
			a.delivered[name] = false
		}
	}
	st := f.st
	if err := st.enter(ctx); err != nil {
		t.Fatal(err)
	}
	defer st.leave()
	inIndex := map[string]uint32{}
	var last uint32
	for i := range st.msgs {
		e := &st.msgs[i]
		if e.uid <= last || e.uid >= st.next {
			t.Errorf("uid %d out of order (last %d, next %d)", e.uid, last, st.next)
		}
		last = e.uid
		p, ok := files[e.base()]
		if !ok || p != st.msgPath(e) {
			t.Errorf("index entry uid %d %s: file %q", e.uid, st.msgPath(e), p)
		}
		if _, fl := splitName(filepath.Base(p)); fl != e.flags {
			t.Errorf("uid %d flags %b, file says %b", e.uid, e.flags, fl)
		}
		inIndex[e.base()] = e.uid
	}
	for base := range files {
		if _, ok := inIndex[base]; !ok {
			t.Errorf("file %s not in the index", base)
		}
	}
	present := map[uint32]bool{}
	for _, uid := range inIndex {
		present[uid] = true
	}
	for uid := range a.appended {
		if !a.deleting[uid] && !present[uid] {
			t.Errorf("acknowledged append uid %d lost", uid)
		}
	}
	for uid := range a.deleted {
		if present[uid] {
			t.Errorf("acknowledged delete uid %d still there", uid)
		}
	}
	return tmpLeft
}

func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a helper process")
	}
	bin := buildCrashHelper(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, mode := range []string{"deliver", "index"} {
		t.Run(mode, func(t *testing.T) {
			root := t.TempDir()
			a := &acked{map[string]bool{}, map[uint32]bool{}, map[uint32]bool{}, map[uint32]bool{}}
			var validity uint32
			var highest uint64
			total, leftovers := 0, 0
			for i := 0; i < 10; i++ {
				after := time.Duration(10+rng.IntN(250)) * time.Millisecond
				runAndKill(t, bin, root, mode, rng.Uint64(), after, a)
				leftovers += checkAfterCrash(t, root, a, &validity, &highest)
				if t.Failed() {
					t.Fatalf("iteration %d (killed after %v)", i, after)
				}
				total = len(a.delivered) + len(a.appended)
			}
			gone := 0
			for _, ok := range a.delivered {
				if !ok {
					gone++
				}
			}
			if mode == "deliver" && gone > 0 {
				t.Errorf("%d acknowledged deliveries missing", gone)
			}
			t.Logf("%s: %d acknowledged messages over 10 kills, %d tmp/ leftovers cleaned", mode, total, leftovers)
			if total == 0 {
				t.Error("helper acknowledged nothing")
			}
		})
	}
}
