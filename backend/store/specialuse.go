package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// A folder created with a special use (IMAP CREATE-SPECIAL-USE, RFC 6154
// §3) keeps it in a small file in its own Maildir++ directory, so the use
// moves with the directory on RENAME (children included) and goes with it
// on DELETE, without a second list to keep in step with the tree.
//
// Rules, the store's alone:
//   - Only the uses a mail store can honour: \Archive, \Drafts, \Junk,
//     \Sent and \Trash. \All and \Flagged name virtual folders (every
//     message, every flagged message) that vmaild does not build; any
//     other word is not an RFC 6154 use. Both are ErrSpecialUse.
//   - One use per folder: a folder is listed with at most one use
//     (FolderInfo.SpecialUse).
//   - Several folders may carry the same use, as Dovecot allows: a user's
//     "Old Mail" (\Archive) beside "Archive" (\Archive). The configured
//     special folders (Store.SpecialFolders) keep theirs, and where the
//     server files mail itself (the Junk filter, Sieve) it names its
//     folder: a user folder created with \Junk is listed as \Junk but does
//     not change where spam is filed.
//   - A configured folder's use wins over a stored one (a folder renamed
//     to "Sent" is \Sent).
const specialUseFile = "vmaild-special-use"

// specialUseHint, in the account's Maildir, says that some folder may
// have a use file: it is written before the first one and never removed,
// so ListFolders, which reads the Maildir's entries anyway, opens no use
// file in an account that never created a folder with a use (an open per
// folder made a LIST of 200 folders five times slower).
const specialUseHint = "vmaild-special-uses"

// ErrSpecialUse: a special use the store does not assign (unknown,
// virtual, or more than one). It is an ErrInvalid.
var ErrSpecialUse = fmt.Errorf("%w: special use not supported", ErrInvalid)

// storableUses are the RFC 6154 uses a folder can be created with.
var storableUses = []string{`\Archive`, `\Drafts`, `\Junk`, `\Sent`, `\Trash`}

// canonicalUse returns use as RFC 6154 spells it, or ErrSpecialUse.
func canonicalUse(use string) (string, error) {
	for _, u := range storableUses {
		if strings.EqualFold(u, use) {
			return u, nil
		}
	}
	for _, u := range []string{`\All`, `\Flagged`} {
		if strings.EqualFold(u, use) {
			return "", fmt.Errorf("%s is a virtual folder vmaild does not provide: %w", u, ErrSpecialUse)
		}
	}
	return "", fmt.Errorf("%q is not an RFC 6154 special use: %w", use, ErrSpecialUse)
}

// CreateSpecialFolder is CreateFolder for CREATE name (USE (uses)): the
// folder is built whole, its use file included, in a directory outside the
// folder namespace and renamed into place, so a crash leaves either no
// folder or one with its use (a leftover is removed like a deleted
// folder's). With no uses it is CreateFolder.
func (m *Mailbox) CreateSpecialFolder(ctx context.Context, name string, uses []string) error {
	if len(uses) == 0 {
		return m.CreateFolder(ctx, name)
	}
	if len(uses) > 1 {
		return fmt.Errorf("folder %q: one special use per folder: %w", name, ErrSpecialUse)
	}
	use, err := canonicalUse(uses[0])
	if err != nil {
		return fmt.Errorf("folder %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	name = strings.TrimSuffix(name, Delimiter)
	rel, canonical, err := folderDir(name)
	if err != nil {
		return err
	}
	if rel == "" {
		return fmt.Errorf("folder %q: %w", name, ErrExists)
	}
	mu := m.store.accountLock(m.dir)
	mu.Lock()
	defer mu.Unlock()
	dir := filepath.Join(m.dir, rel)
	if _, err := os.Stat(filepath.Join(dir, "cur")); err == nil {
		return fmt.Errorf("folder %q: %w", name, ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return ioError("stat", dir, err)
	}
	parts := strings.Split(canonical, Delimiter)
	for i := 1; i < len(parts); i++ {
		prel, _, err := folderDir(strings.Join(parts[:i], Delimiter))
		if err != nil || prel == "" {
			continue
		}
		if err := m.createDir(filepath.Join(m.dir, prel)); err != nil && !errors.Is(err, ErrExists) {
			return err
		}
	}
	if err := m.writeUseHint(); err != nil {
		return err
	}
	stage := filepath.Join(m.dir, deletedPrefix+strings.TrimSuffix(m.store.uniqueBase(time.Now(), 0), ",S=0"))
	if err := m.stageFolder(ctx, stage, use); err != nil {
		os.RemoveAll(stage)
		return err
	}
	// rename(2) replaces only an empty directory: a bare directory
	// without cur/ (a crashed plain CREATE) is taken over, a folder
	// created meanwhile by another process is not.
	if err := os.Rename(stage, dir); err != nil {
		os.RemoveAll(stage)
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return fmt.Errorf("folder %q: %w", name, ErrExists)
		}
		return ioError("rename", stage, err)
	}
	return syncDir(m.dir)
}

// writeUseHint creates specialUseHint, durably, if it is missing.
func (m *Mailbox) writeUseHint() error {
	p := filepath.Join(m.dir, specialUseHint)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return ioError("create", p, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ioError("write", p, err)
	}
	return syncDir(m.dir)
}

// stageFolder builds a complete folder with its use file at dir.
func (m *Mailbox) stageFolder(ctx context.Context, dir, use string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return ioError("mkdir", dir, err)
	}
	if err := makeMaildir(dir); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, "maildirfolder"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return ioError("create", dir, err)
	}
	f.Close()
	if _, err := writeDurable(ctx, filepath.Join(dir, specialUseFile), strings.NewReader(use+"\n")); err != nil {
		return err
	}
	return syncDir(dir)
}

// storedUse reads the use a folder was created with, "" if none (or if
// the file holds something the store would not have written).
func storedUse(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, specialUseFile))
	if err != nil {
		return ""
	}
	use, err := canonicalUse(string(bytes.TrimSpace(data)))
	if err != nil {
		return ""
	}
	return use
}

// folderSpecialUse is the one place a folder's special use is decided:
// the configured one for its name, else the one it was created with
// (looked for when stored, the account's specialUseHint, is set).
func (m *Mailbox) folderSpecialUse(name string, stored bool) string {
	if use := m.specialUse(name); use != "" || !stored {
		return use
	}
	rel, _, err := folderDir(name)
	if err != nil || rel == "" {
		return ""
	}
	return storedUse(filepath.Join(m.dir, rel))
}
