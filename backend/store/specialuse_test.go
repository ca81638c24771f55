package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// uses maps each listed folder with a special use to it.
func uses(t *testing.T, mb *Mailbox) map[string]string {
	t.Helper()
	fis, err := mb.ListFolders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, fi := range fis {
		if fi.SpecialUse == "" {
			continue
		}
		out[fi.Name] = fi.SpecialUse
		found := false
		for _, a := range fi.Attrs {
			found = found || a == fi.SpecialUse
		}
		if !found {
			t.Errorf("%s: SpecialUse %s not in Attrs %v", fi.Name, fi.SpecialUse, fi.Attrs)
		}
	}
	return out
}

// TestCreateSpecialFolder: CREATE (USE ...) stores the use with the
// folder, which keeps it through RENAME (children too) and loses it with
// DELETE; uses the store cannot honour are refused and create nothing.
func TestCreateSpecialFolder(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mb := mustOpen(t, s, "a@example.org")

	refused := []struct {
		name string
		uses []string
	}{
		{"All", []string{`\All`}},
		{"Flagged", []string{`\Flagged`}},
		{"Important", []string{`\Important`}},
		{"Both", []string{`\Archive`, `\Sent`}},
		{"Word", []string{`Archive`}},
	}
	for _, c := range refused {
		if err := mb.CreateSpecialFolder(ctx, c.name, c.uses); !errors.Is(err, ErrSpecialUse) || !errors.Is(err, ErrInvalid) {
			t.Errorf("CREATE %s (USE %v): %v, want ErrSpecialUse", c.name, c.uses, err)
		}
		if _, err := os.Stat(filepath.Join(mb.Dir(), "."+c.name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("refused %s left a directory: %v", c.name, err)
		}
	}

	if _, err := os.Stat(filepath.Join(mb.Dir(), specialUseHint)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("hint written before any folder has a use: %v", err)
	}
	for name, use := range map[string]string{"Archive": `\archive`, "Old/Spam": `\Junk`, "Sent Mail": `\Sent`} {
		if err := mb.CreateSpecialFolder(ctx, name, []string{use}); err != nil {
			t.Fatalf("CREATE %s (USE (%s)): %v", name, use, err)
		}
	}
	if err := mb.CreateSpecialFolder(ctx, "Archive", []string{`\Archive`}); !errors.Is(err, ErrExists) {
		t.Errorf("second CREATE Archive: %v, want ErrExists", err)
	}
	want := map[string]string{"Archive": `\Archive`, "Old/Spam": `\Junk`, "Sent Mail": `\Sent`,
		"Drafts": `\Drafts`, "Sent": `\Sent`, "Trash": `\Trash`, "Junk": `\Junk`}
	if got := uses(t, mb); !equalMaps(got, want) {
		t.Fatalf("after CREATE: %v, want %v", got, want)
	}
	// Nothing is left outside the folder namespace.
	ents, _ := os.ReadDir(mb.Dir())
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), deletedPrefix) {
			t.Errorf("staging directory left: %s", e.Name())
		}
	}

	if err := mb.RenameFolder(ctx, "Old", "Older"); err != nil {
		t.Fatal(err)
	}
	if err := mb.RenameFolder(ctx, "Archive", "Archives/2026"); err != nil {
		t.Fatal(err)
	}
	if err := mb.DeleteFolder(ctx, "Sent Mail"); err != nil {
		t.Fatal(err)
	}
	// A plain CREATE of the deleted name does not bring the use back.
	if err := mb.CreateFolder(ctx, "Sent Mail"); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"Archives/2026": `\Archive`, "Older/Spam": `\Junk`,
		"Drafts": `\Drafts`, "Sent": `\Sent`, "Trash": `\Trash`, "Junk": `\Junk`}
	if got := uses(t, mb); !equalMaps(got, want) {
		t.Fatalf("after RENAME/DELETE: %v, want %v", got, want)
	}
	// A restart reads the same from disk.
	s2 := &Store{Root: s.Root, Hostname: s.Hostname}
	if got := uses(t, mustOpen(t, s2, "a@example.org")); !equalMaps(got, want) {
		t.Fatalf("after restart: %v, want %v", got, want)
	}
}

// TestCreateSpecialFolderCrashLeftover: a staging directory left by a
// crash between building the folder and renaming it into place is not a
// folder, and the next OpenMailbox removes it.
func TestCreateSpecialFolderCrashLeftover(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	mb := mustOpen(t, s, "a@example.org")
	stage := filepath.Join(mb.Dir(), deletedPrefix+"crash")
	if err := mb.stageFolder(ctx, stage, `\Archive`); err != nil {
		t.Fatal(err)
	}
	if _, ok := uses(t, mb)["crash"]; ok {
		t.Error("staging directory listed")
	}
	mustOpen(t, s, "a@example.org")
	if _, err := os.Stat(stage); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging directory not removed: %v", err)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// BenchmarkListFolders200 lists 200 folders, in an account that never
// created one with a use (no use file is opened) and in one where one
// folder in four has a use (each folder costs an open of its use file).
func BenchmarkListFolders200(b *testing.B) {
	for _, every := range []int{0, 4} {
		b.Run("uses=1/"+strconv.Itoa(every), func(b *testing.B) {
			ctx := context.Background()
			s := newTestStore(b)
			mb := mustOpen(b, s, "a@example.org")
			for i := range 200 {
				name := "f" + strconv.Itoa(i)
				var err error
				if every > 0 && i%every == 0 {
					err = mb.CreateSpecialFolder(ctx, name, []string{`\Archive`})
				} else {
					err = mb.CreateFolder(ctx, name)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				if _, err := mb.ListFolders(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
