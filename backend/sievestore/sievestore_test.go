package sievestore

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/sieve"
)

func TestScripts(t *testing.T) {
	s := Scripts{Home: t.TempDir()}
	if list, err := s.List(); err != nil || len(list) != 0 {
		t.Fatalf("List on a new home = %v, %v", list, err)
	}
	if err := s.Put("spam", []byte("require \"fileinto\";\nfileinto \"Junk\";\n"), sieve.Options{}); err != nil {
		t.Fatal(err)
	}
	var se *sieve.Error
	if err := s.Put("bad", []byte("keep;\nfrob;\n"), sieve.Options{}); !errors.As(err, &se) || se.Line != 2 {
		t.Fatalf("Put of a broken script = %v, want a *sieve.Error on line 2", err)
	}
	if _, err := s.Get("bad"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused script was stored: %v", err)
	}
	if err := s.Activate("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Activate(nope) = %v", err)
	}
	if err := s.Activate("spam"); err != nil {
		t.Fatal(err)
	}
	// Pigeonhole's layout: a relative link to sieve/NAME.sieve.
	if target, err := os.Readlink(filepath.Join(s.Home, ".dovecot.sieve")); err != nil || target != "sieve/spam.sieve" {
		t.Errorf(".dovecot.sieve -> %q, %v", target, err)
	}
	if err := s.Delete("spam"); !errors.Is(err, ErrActive) {
		t.Errorf("Delete(active) = %v", err)
	}
	if err := s.Rename("spam", "junk"); err != nil {
		t.Fatal(err)
	}
	if name, path, err := s.Active(); name != "junk" || path != s.Path("junk") || err != nil {
		t.Errorf("Active after rename = %q %q %v", name, path, err)
	}
	if err := s.Put("vacation", []byte("require \"vacation\";\nvacation \"away\";\n"), sieve.Options{}); err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	want := []Info{{Name: "junk", Size: 37, Active: true}, {Name: "vacation", Size: 37}}
	if err != nil || !reflect.DeepEqual(list, want) {
		t.Errorf("List = %+v, %v; want %+v", list, err, want)
	}
	if err := s.Activate(""); err != nil {
		t.Fatal(err)
	}
	if name, path, _ := s.Active(); name != "" || path != "" {
		t.Errorf("Active after deactivating = %q %q", name, path)
	}
	if err := s.Delete("junk"); err != nil {
		t.Errorf("Delete(inactive) = %v", err)
	}
	for _, bad := range []string{"", ".hidden", "a/b", "tab\there", string([]byte{0xff})} {
		if err := s.Put(bad, []byte("keep;"), sieve.Options{}); !errors.Is(err, ErrName) {
			t.Errorf("Put(%q) = %v, want ErrName", bad, err)
		}
	}
}

// TestPlainDovecotSieve: an old setup's plain .dovecot.sieve file is
// active, and activating another script keeps it as sieve/dovecot.sieve.
func TestPlainDovecotSieve(t *testing.T) {
	s := Scripts{Home: t.TempDir()}
	plain := filepath.Join(s.Home, ".dovecot.sieve")
	os.WriteFile(plain, []byte("discard;\n"), 0o600)
	if name, path, err := s.Active(); name != "" || path != plain || err != nil {
		t.Fatalf("Active = %q %q %v", name, path, err)
	}
	s.Put("new", []byte("keep;\n"), sieve.Options{})
	if err := s.Activate("new"); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Get("dovecot"); err != nil || string(b) != "discard;\n" {
		t.Errorf("the plain file was not kept: %q %v", b, err)
	}
}

func TestCache(t *testing.T) {
	s := Scripts{Home: t.TempDir()}
	s.Put("a", []byte("keep;\n"), sieve.Options{})
	c := &Cache{}
	first, err := c.Load(s.Path("a"))
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := c.Load(s.Path("a")); again != first {
		t.Error("an unchanged script was compiled again")
	}
	s.Put("a", []byte("discard;\n"), sieve.Options{})
	changed, err := c.Load(s.Path("a"))
	if err != nil || changed == first {
		t.Fatalf("a changed script was not compiled again: %v", err)
	}
	// A broken file (written behind our back) is an error, cached too.
	os.WriteFile(s.Path("a"), []byte("frob;\n"), 0o600)
	os.Chtimes(s.Path("a"), time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	var se *sieve.Error
	if _, err := c.Load(s.Path("a")); !errors.As(err, &se) {
		t.Errorf("Load of a broken script = %v", err)
	}
}

// TestActivateRefusedKeepsPlainFile: a SETACTIVE that fails (unknown or
// invalid name) changes nothing: the plain .dovecot.sieve stays the
// active script instead of being moved aside, which would silently turn
// the user's filtering off.
func TestActivateRefusedKeepsPlainFile(t *testing.T) {
	for _, name := range []string{"missing", "../x"} {
		t.Run(name, func(t *testing.T) {
			s := Scripts{Home: t.TempDir()}
			plain := filepath.Join(s.Home, ".dovecot.sieve")
			if err := os.WriteFile(plain, []byte("discard;\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := s.Activate(name); err == nil {
				t.Fatalf("Activate(%q) succeeded", name)
			}
			if _, path, err := s.Active(); path != plain || err != nil {
				t.Errorf("after a refused Activate, Active = %q, %v; want %q", path, err, plain)
			}
		})
	}
}
