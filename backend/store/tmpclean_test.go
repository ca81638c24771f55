package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCleanTmpSparesOldDatedFilesInFlight: a file in tmp/ whose mtime is
// old (an APPEND with an old internal date, a hard-linked COPY) but which
// was just made is not a crashed writer's leftover.
func TestCleanTmpSparesOldDatedFilesInFlight(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	ctx := context.Background()
	mb, err := s.OpenMailbox(ctx, Account{Address: "a@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(mb.Dir(), "tmp")
	inflight := filepath.Join(tmp, "inflight")
	leftover := filepath.Join(tmp, "leftover")
	for _, p := range []string{inflight, leftover} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-72 * time.Hour)
	if err := os.Chtimes(inflight, old, old); err != nil {
		t.Fatal(err)
	}
	st := &folderState{store: s, dir: mb.Dir()}
	st.cleanTmp()
	if _, err := os.Stat(inflight); err != nil {
		t.Errorf("a file just written with an old mtime was removed: %v", err)
	}
	// Once older than TmpMaxAge by both clocks, it is a leftover.
	time.Sleep(10 * time.Millisecond)
	s.TmpMaxAge = 5 * time.Millisecond
	st.cleanTmp()
	if _, err := os.Stat(leftover); err == nil {
		t.Error("a leftover older than TmpMaxAge by mtime and ctime was kept")
	}
}
