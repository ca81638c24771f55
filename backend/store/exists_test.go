package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestFolderExists: INBOX, existing folders and special-use folders (made
// on first use) exist; others do not; and asking creates nothing, not
// even the account's Maildir.
func TestFolderExists(t *testing.T) {
	root := t.TempDir()
	s := &Store{Root: root}
	acct := Account{Address: "a@example.org"}
	dir, err := s.MaildirPath(acct.Address, "")
	if err != nil {
		t.Fatal(err)
	}
	if !s.FolderExists(acct, "INBOX") || !s.FolderExists(acct, "Junk") || s.FolderExists(acct, "Work") {
		t.Error("before the account exists")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("FolderExists made the Maildir: %v", err)
	}
	mb, err := s.OpenMailbox(context.Background(), acct)
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.CreateFolder(context.Background(), "Work"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"INBOX": true, "Work": true, "Junk": true, "Lists": false, "../x": false, "": false} {
		if got := s.FolderExists(acct, name); got != want {
			t.Errorf("FolderExists(%q) = %v, want %v", name, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".Lists")); !os.IsNotExist(err) {
		t.Errorf("FolderExists made a folder: %v", err)
	}
}
