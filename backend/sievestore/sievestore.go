// Package sievestore keeps users' Sieve scripts where Pigeonhole keeps
// them, so an existing Dovecot installation's scripts work in place and
// the other way round. In a user's mail home (the directory holding the
// Maildir):
//
//	sieve/NAME.sieve   each script
//	.dovecot.sieve     a symbolic link to sieve/NAME.sieve: the active one
//
// A .dovecot.sieve that is a plain file (an old setup without ManageSieve)
// is the active script too, with no name. Writes are atomic (a temporary
// file renamed into place; the link replaced by a rename), so a delivery
// reading a script never sees half of one. Cache compiles each script once
// and recompiles it when its file changes. CheckQuota is the per-user
// script quota (number of scripts, total and single-script size) that
// ManageSieve's HAVESPACE and PUTSCRIPT apply.
package sievestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/vmaild/vmaild/backend/sieve"
)

// Names of the layout.
const (
	// ActiveLink is the active script's link in the mail home.
	ActiveLink = ".dovecot.sieve"
	// Dir holds the scripts, in the mail home.
	Dir = "sieve"
	// Ext ends every script's file name.
	Ext = ".sieve"
)

// Errors wrapped by the methods, for ManageSieve's response codes.
var (
	ErrNotFound = errors.New("no such script")
	ErrExists   = errors.New("script exists already")
	ErrActive   = errors.New("script is active")
	ErrName     = errors.New("invalid script name")
)

// HomeOf is the mail home of an account whose Maildir is maildir: its
// parent directory, as Dovecot's usual mail_location = maildir:~/Maildir.
func HomeOf(maildir string) string { return filepath.Dir(filepath.Clean(maildir)) }

// Scripts are one user's scripts.
type Scripts struct {
	// Home is the user's mail home.
	Home string
	// Perm is the mode of new script files; 0 is 0600 (they may hold
	// addresses and vacation texts).
	Perm os.FileMode
}

// Info describes one script.
type Info struct {
	Name   string
	Size   int64
	Active bool
}

// ValidName checks a script name as ManageSieve (RFC 5804 section 1.6)
// and a file name allow: UTF-8 without control characters, no "/", not
// starting with ".", at most 255 bytes with the extension.
func ValidName(name string) error {
	switch {
	case name == "", len(name)+len(Ext) > 255, !utf8.ValidString(name),
		strings.ContainsAny(name, "/\\"), strings.HasPrefix(name, "."):
		return fmt.Errorf("%w: %q", ErrName, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == 0x2028 || r == 0x2029 {
			return fmt.Errorf("%w: %q", ErrName, name)
		}
	}
	return nil
}

func (s Scripts) dir() string { return filepath.Join(s.Home, Dir) }

// Path is the file of script name.
func (s Scripts) Path(name string) string { return filepath.Join(s.dir(), name+Ext) }

// Active returns the active script's name and file; name is "" for a
// plain .dovecot.sieve file, path is "" when no script is active.
func (s Scripts) Active() (name, path string, err error) {
	link := filepath.Join(s.Home, ActiveLink)
	fi, err := os.Lstat(link)
	if missing(err) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		return "", link, nil
	}
	target, err := os.Readlink(link)
	if err != nil {
		return "", "", err
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(s.Home, target)
	}
	if _, err := os.Stat(target); missing(err) {
		// A dangling link activates nothing, as in Pigeonhole.
		return "", "", nil
	}
	base := filepath.Base(target)
	if filepath.Dir(target) == s.dir() && strings.HasSuffix(base, Ext) {
		name = strings.TrimSuffix(base, Ext)
	}
	return name, target, nil
}

// missing says err means there is no such file: not there, or a path
// through something that is not a directory (a home not made yet, or in
// the way).
func missing(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// List returns the scripts, sorted by name.
func (s Scripts) List() ([]Info, error) {
	entries, err := os.ReadDir(s.dir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	active, _, err := s.Active()
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), Ext)
		if !ok || !e.Type().IsRegular() || ValidName(name) != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, Info{Name: name, Size: fi.Size(), Active: name == active})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Get reads script name.
func (s Scripts) Get(name string) ([]byte, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(s.Path(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return b, err
}

// Put compiles src with opts and, when it compiles, stores it as name,
// replacing a script of that name (the active one stays active). The
// compile error, with its line, is returned as it is (*sieve.Error).
func (s Scripts) Put(name string, src []byte, opts sieve.Options) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if _, err := sieve.Compile(src, opts); err != nil {
		return err
	}
	if err := os.MkdirAll(s.dir(), 0o700); err != nil {
		return err
	}
	perm := s.Perm
	if perm == 0 {
		perm = 0o600
	}
	f, err := os.CreateTemp(s.dir(), ".put-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(src); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.Path(name)); err != nil {
		return err
	}
	// The rename is durable once the directory is: a script PUTSCRIPT
	// answered OK survives a crash.
	return syncDir(s.dir())
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// Activate makes name the active script; "" deactivates. A plain
// .dovecot.sieve file is moved into sieve/ first (as "dovecot") so that
// activating another script loses nothing.
func (s Scripts) Activate(name string) error {
	link := filepath.Join(s.Home, ActiveLink)
	// The name is checked before the plain file is moved aside: a refused
	// activation must leave the active script as it was.
	if name != "" {
		if err := ValidName(name); err != nil {
			return err
		}
		if _, err := os.Stat(s.Path(name)); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%w: %q", ErrNotFound, name)
			}
			return err
		}
	}
	if err := s.adoptPlainFile(link); err != nil {
		return err
	}
	if name == "" {
		if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	tmp := filepath.Join(s.Home, ".dovecot.sieve.tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Join(Dir, name+Ext), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(s.Home)
}

func (s Scripts) adoptPlainFile(link string) error {
	fi, err := os.Lstat(link)
	if err != nil || fi.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	if err := os.MkdirAll(s.dir(), 0o700); err != nil {
		return err
	}
	dst := s.Path("dovecot")
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
			break
		}
		dst = s.Path(fmt.Sprintf("dovecot-%d", i))
	}
	return os.Rename(link, dst)
}

// Delete removes script name; the active script cannot be deleted
// (RFC 5804 DELETESCRIPT).
func (s Scripts) Delete(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	active, _, err := s.Active()
	if err != nil {
		return err
	}
	if active == name {
		return fmt.Errorf("%w: %q", ErrActive, name)
	}
	if err := os.Remove(s.Path(name)); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	} else if err != nil {
		return err
	}
	return nil
}

// Rename renames script from to to, keeping it active if it was.
func (s Scripts) Rename(from, to string) error {
	if err := ValidName(from); err != nil {
		return err
	}
	if err := ValidName(to); err != nil {
		return err
	}
	if _, err := os.Lstat(s.Path(to)); err == nil {
		return fmt.Errorf("%w: %q", ErrExists, to)
	}
	active, _, err := s.Active()
	if err != nil {
		return err
	}
	if active != from {
		if err := os.Rename(s.Path(from), s.Path(to)); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %q", ErrNotFound, from)
		} else if err != nil {
			return err
		}
		return nil
	}
	// The active script: link it under the new name, point the active
	// link there, then drop the old name, so deliveries always find one.
	if err := os.Link(s.Path(from), s.Path(to)); err != nil {
		return err
	}
	if err := s.Activate(to); err != nil {
		os.Remove(s.Path(to))
		return err
	}
	return os.Remove(s.Path(from))
}
