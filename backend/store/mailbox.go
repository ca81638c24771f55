package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Mailbox is one account's Maildir: its folder tree and subscriptions.
// It is cheap; open one per session or delivery.
type Mailbox struct {
	store   *Store
	dir     string
	address string
	quota   Quota
}

// Dir is the account's Maildir directory.
func (m *Mailbox) Dir() string { return m.dir }

// Address is the account address the mailbox was opened for.
func (m *Mailbox) Address() string { return m.address }

// FolderInfo is one entry of ListFolders.
type FolderInfo struct {
	// Name is the IMAP name ("/"-separated, UTF-8; INBOX upper case).
	Name string
	// Attrs are RFC 3501/6154 attributes: \HasChildren or \HasNoChildren,
	// \Noselect for a level that exists only as a parent of others, and
	// the special use (\Sent, \Drafts, \Trash, \Junk, \Archive) when
	// there is one: configured, or given at creation (CreateSpecialFolder).
	Attrs []string
	// SpecialUse is the special-use attribute alone, or "".
	SpecialUse string
	Subscribed bool
}

// FolderStatus is what IMAP STATUS and SELECT report about a folder.
type FolderStatus struct {
	Name        string
	Messages    uint32
	Unseen      uint32
	Deleted     uint32
	UIDNext     uint32
	UIDValidity uint32
	// Size is the sum of the messages' sizes in octets (STATUS SIZE).
	Size int64
	// HighestModSeq is the folder's HIGHESTMODSEQ (RFC 7162).
	HighestModSeq uint64
	// Recent counts the messages no session has been given as \Recent
	// yet (STATUS RECENT); STATUS does not claim them.
	Recent uint32
}

// resolve maps a folder name to its directory. A special-use folder that
// does not exist yet is created here ("created on first use").
func (m *Mailbox) resolve(name string, create bool) (dir, canonical string, err error) {
	rel, canonical, err := folderDir(name)
	if err != nil {
		return "", "", err
	}
	if rel == "" {
		return m.dir, canonical, nil
	}
	dir = filepath.Join(m.dir, rel)
	if _, err := os.Stat(filepath.Join(dir, "cur")); err == nil {
		return dir, canonical, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", ioError("stat", dir, err)
	}
	if create && m.specialUse(canonical) != "" {
		if err := m.createSpecial(dir, canonical); err != nil {
			return "", "", err
		}
		return dir, canonical, nil
	}
	return "", "", fmt.Errorf("folder %q: %w", name, ErrNotFound)
}

// ensureSpecial creates the special-use folders that are missing.
func (m *Mailbox) ensureSpecial() error {
	for _, sf := range m.store.special() {
		rel, canon, err := folderDir(sf.Name)
		if err != nil || rel == "" {
			continue
		}
		if err := m.createSpecial(filepath.Join(m.dir, rel), canon); err != nil {
			return err
		}
	}
	return nil
}

// createSpecial creates a missing special-use folder and subscribes it, as
// Dovecot's auto=subscribe does, so that clients showing only subscribed
// folders (Roundcube) find Drafts however it came to exist. Only the call
// that creates the folder subscribes it: a folder the user unsubscribed
// afterwards stays unsubscribed.
func (m *Mailbox) createSpecial(dir, canon string) error {
	if _, err := os.Stat(filepath.Join(dir, "cur")); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return ioError("stat", dir, err)
	}
	mu := m.store.accountLock(m.dir)
	mu.Lock()
	defer mu.Unlock()
	if err := m.createDir(dir); errors.Is(err, ErrExists) {
		return nil
	} else if err != nil {
		return err
	}
	return m.editSubscriptions(addSubscription(canon))
}

func (m *Mailbox) specialUse(name string) string {
	for _, sf := range m.store.special() {
		if sf.Name == name {
			return sf.Use
		}
	}
	return ""
}

// createDir makes one Maildir++ sub-maildir, with the maildirfolder marker
// file Maildir++ readers (and Dovecot) expect.
func (m *Mailbox) createDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			if _, serr := os.Stat(filepath.Join(dir, "cur")); serr == nil {
				return fmt.Errorf("folder %s: %w", dir, ErrExists)
			}
		} else {
			return ioError("mkdir", dir, err)
		}
	}
	if err := makeMaildir(dir); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, "maildirfolder"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return ioError("create", dir, err)
	}
	f.Close()
	return syncDir(m.dir)
}

// CreateFolder creates a folder and any missing parents (RFC 3501 CREATE).
// A trailing delimiter is ignored; INBOX and existing folders give
// ErrExists.
func (m *Mailbox) CreateFolder(ctx context.Context, name string) error {
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
	return m.createDir(filepath.Join(m.dir, rel))
}

// DeleteFolder removes a folder and its messages; its children stay (IMAP
// DELETE). The directory is first renamed out of the folder namespace, so
// the folder disappears atomically even if the removal is interrupted; the
// next OpenMailbox removes such leftovers. The quota is credited.
func (m *Mailbox) DeleteFolder(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rel, _, err := folderDir(name)
	if err != nil {
		return err
	}
	if rel == "" {
		return fmt.Errorf("%w: INBOX cannot be deleted", ErrInvalid)
	}
	mu := m.store.accountLock(m.dir)
	mu.Lock()
	defer mu.Unlock()
	dir := filepath.Join(m.dir, rel)
	if _, err := os.Stat(filepath.Join(dir, "cur")); err != nil {
		return ioError("delete folder", name, err)
	}
	bytes, msgs, err := measureFolder(ctx, dir)
	if err != nil {
		return err
	}
	trash := filepath.Join(m.dir, deletedPrefix+strings.TrimSuffix(m.store.uniqueBase(time.Now(), 0), ",S=0"))
	if err := os.Rename(dir, trash); err != nil {
		return ioError("rename", dir, err)
	}
	m.store.forget(dir, false)
	m.store.hub.publish(dir, EventGone)
	if err := syncDir(m.dir); err != nil {
		return err
	}
	m.store.releaseQuota(m.quota, bytes, msgs)
	if err := os.RemoveAll(trash); err != nil {
		m.store.logger().Warn("store: removing deleted folder", "dir", trash, "err", err)
	}
	return nil
}

// deletedPrefix names folders being deleted; it has no leading dot, so it
// is never listed as a folder.
const deletedPrefix = "vmaild-deleted-"

func (m *Mailbox) removeDeletedLeftovers() {
	ents, err := os.ReadDir(m.dir)
	if err != nil {
		return
	}
	for _, de := range ents {
		if strings.HasPrefix(de.Name(), deletedPrefix) {
			os.RemoveAll(filepath.Join(m.dir, de.Name()))
		}
	}
}

// RenameFolder renames a folder with its children (IMAP RENAME). Renaming
// INBOX moves its messages into a new folder and leaves INBOX empty, with
// its children where they are, as RFC 3501 asks. Subscriptions follow.
func (m *Mailbox) RenameFolder(ctx context.Context, oldName, newName string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	oldRel, oldCanon, err := folderDir(oldName)
	if err != nil {
		return err
	}
	newRel, newCanon, err := folderDir(newName)
	if err != nil {
		return err
	}
	if newRel == "" {
		return fmt.Errorf("folder INBOX: %w", ErrExists)
	}
	if oldRel == "" {
		return m.renameInbox(ctx, newName)
	}
	if newCanon == oldCanon || strings.HasPrefix(newCanon, oldCanon+Delimiter) {
		return fmt.Errorf("%w: cannot rename %q into itself", ErrInvalid, oldName)
	}
	mu := m.store.accountLock(m.dir)
	mu.Lock()
	defer mu.Unlock()
	ents, err := os.ReadDir(m.dir)
	if err != nil {
		return ioError("readdir", m.dir, err)
	}
	type move struct{ from, to string }
	var moves []move
	existing := map[string]bool{}
	for _, de := range ents {
		existing[de.Name()] = true
	}
	for _, de := range ents {
		n := de.Name()
		if !de.IsDir() || (n != oldRel && !strings.HasPrefix(n, oldRel+".")) {
			continue
		}
		to := newRel + n[len(oldRel):]
		if len(to) > maxDirName {
			return fmt.Errorf("%w: renamed folder name too long", ErrInvalid)
		}
		if existing[to] {
			return fmt.Errorf("folder %q: %w", newName, ErrExists)
		}
		moves = append(moves, move{n, to})
	}
	if len(moves) == 0 {
		return fmt.Errorf("folder %q: %w", oldName, ErrNotFound)
	}
	for _, mv := range moves {
		from := filepath.Join(m.dir, mv.from)
		if err := os.Rename(from, filepath.Join(m.dir, mv.to)); err != nil {
			return ioError("rename", from, err)
		}
	}
	oldDir := filepath.Join(m.dir, oldRel)
	m.store.forget(oldDir, true)
	m.store.hub.publishTree(oldDir, EventGone)
	if err := syncDir(m.dir); err != nil {
		return err
	}
	return m.editSubscriptions(func(subs []string) []string {
		for i, s := range subs {
			if s == oldCanon || strings.HasPrefix(s, oldCanon+Delimiter) {
				subs[i] = newCanon + s[len(oldCanon):]
			}
		}
		return subs
	})
}

// renameInbox moves every message of INBOX into a new folder. Names are
// kept (they are unique in INBOX and the folder is new), so internal dates
// and sizes carry over; the new folder gets its UIDs when first opened.
func (m *Mailbox) renameInbox(ctx context.Context, newName string) error {
	if err := m.CreateFolder(ctx, newName); err != nil {
		return err
	}
	dest, _, err := m.resolve(newName, false)
	if err != nil {
		return err
	}
	st := m.store.acquire(m.dir)
	defer m.store.release(st)
	if err := st.lock(ctx); err != nil {
		return err
	}
	defer st.unlock()
	pre := st.curBefore()
	for i := range st.msgs {
		e := &st.msgs[i]
		if err := os.Rename(st.msgPath(e), filepath.Join(dest, "cur", e.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			st.flush()
			return ioError("rename", st.msgPath(e), err)
		}
		st.emit(record{op: 'X', uid: e.uid})
	}
	if err := syncDir(filepath.Join(dest, "cur")); err != nil {
		return err
	}
	st.newMtime = 0
	st.ownCurChange(pre)
	if err := st.flush(); err != nil {
		return err
	}
	m.store.hub.publish(st.dir, EventExpunge)
	return nil
}

// ListFolders lists every folder, creating missing special-use folders on
// the way (see createSpecial).
func (m *Mailbox) ListFolders(ctx context.Context) ([]FolderInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := m.ensureSpecial(); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(m.dir)
	if err != nil {
		return nil, ioError("readdir", m.dir, err)
	}
	real := map[string]bool{Inbox: true}
	all := map[string]bool{Inbox: true}
	stored := false
	for _, de := range ents {
		if !de.IsDir() {
			stored = stored || de.Name() == specialUseHint
			continue
		}
		name, ok := folderName(de.Name())
		if !ok {
			continue
		}
		real[name] = true
		parts := strings.Split(name, Delimiter)
		for i := 1; i <= len(parts); i++ {
			all[strings.Join(parts[:i], Delimiter)] = true
		}
	}
	subs, err := m.Subscriptions(ctx)
	if err != nil {
		return nil, err
	}
	subscribed := map[string]bool{}
	for _, s := range subs {
		subscribed[s] = true
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == Inbox) != (names[j] == Inbox) {
			return names[i] == Inbox
		}
		return names[i] < names[j]
	})
	hasChildren := map[string]bool{}
	for n := range all {
		if i := strings.LastIndex(n, Delimiter); i > 0 {
			hasChildren[n[:i]] = true
		}
	}
	out := make([]FolderInfo, 0, len(names))
	for _, n := range names {
		fi := FolderInfo{Name: n, Subscribed: subscribed[n]}
		if hasChildren[n] {
			fi.Attrs = append(fi.Attrs, `\HasChildren`)
		} else {
			fi.Attrs = append(fi.Attrs, `\HasNoChildren`)
		}
		if !real[n] {
			fi.Attrs = append(fi.Attrs, `\Noselect`)
		} else if use := m.folderSpecialUse(n, stored); use != "" {
			fi.SpecialUse = use
			fi.Attrs = append(fi.Attrs, use)
		}
		out = append(out, fi)
	}
	return out, nil
}

// Status reports a folder's counters, bringing its index up to date.
func (m *Mailbox) Status(ctx context.Context, name string) (FolderStatus, error) {
	dir, canonical, err := m.resolve(name, true)
	if err != nil {
		return FolderStatus{}, err
	}
	st := m.store.acquire(dir)
	defer m.store.release(st)
	if err := st.lock(ctx); err != nil {
		return FolderStatus{}, err
	}
	defer st.unlock()
	s := FolderStatus{Name: canonical, UIDNext: st.next, UIDValidity: st.validity, Messages: uint32(len(st.msgs)), HighestModSeq: st.highest}
	s.Recent = uint32(len(st.msgs) - st.find(st.recentFrom))
	for i := range st.msgs {
		e := &st.msgs[i]
		if e.flags&FlagSeen == 0 {
			s.Unseen++
		}
		if e.flags&FlagDeleted != 0 {
			s.Deleted++
		}
		s.Size += e.size
	}
	return s, nil
}

// Watch subscribes to change notifications of a folder.
func (m *Mailbox) Watch(name string) (*Watcher, error) {
	dir, _, err := m.resolve(name, true)
	if err != nil {
		return nil, err
	}
	return m.store.hub.add(dir), nil
}

// Subscriptions file (Dovecot's "subscriptions" in the Maildir). Version 2
// starts with "V\t2\n\n" and separates hierarchy levels with a tab; version
// 1 has one name per line with the namespace separator. Names are stored
// in modified UTF-7 like the folder directories.
const (
	subsName   = "subscriptions"
	subsHeader = "V\t2\n\n"
)

// Subscriptions lists the subscribed folder names. INBOX is always first:
// it cannot be deleted, and a client that shows only subscribed folders
// must not hide it, so it counts as subscribed whatever the file says
// (UNSUBSCRIBE INBOX is accepted and changes nothing that is listed).
func (m *Mailbox) Subscriptions(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	subs, err := m.readSubscriptions()
	if err != nil {
		return nil, err
	}
	out := append(make([]string, 0, len(subs)+1), Inbox)
	for _, s := range subs {
		if s != Inbox {
			out = append(out, s)
		}
	}
	return out, nil
}

// readSubscriptions lists the names in the subscriptions file, in its
// order and without duplicates.
func (m *Mailbox) readSubscriptions() ([]string, error) {
	data, err := os.ReadFile(filepath.Join(m.dir, subsName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, ioError("read", subsName, err)
	}
	v2 := bytes.HasPrefix(data, []byte(subsHeader))
	if v2 {
		data = data[len(subsHeader):]
	}
	var out []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		var parts []string
		switch {
		case v2:
			parts = strings.Split(line, "\t")
			for i, p := range parts {
				parts[i] = tabUnescape(p)
			}
		case strings.Contains(line, "/"):
			parts = strings.Split(line, "/")
		default:
			parts = strings.Split(line, ".")
		}
		for i, p := range parts {
			if d, err := decodeMUTF7(p); err == nil {
				parts[i] = d
			}
		}
		name := strings.Join(parts, Delimiter)
		if _, canon, err := folderDir(name); err == nil && !seen[canon] {
			seen[canon] = true
			out = append(out, canon)
		}
	}
	return out, nil
}

func tabUnescape(s string) string {
	if !strings.Contains(s, "\x01") {
		return s
	}
	r := strings.NewReplacer("\x011", "\x01", "\x01t", "\t", "\x01r", "\r", "\x01n", "\n", "\x010", "\x00")
	return r.Replace(s)
}

// Subscribe adds a folder to the subscriptions (it need not exist, as IMAP
// allows).
func (m *Mailbox) Subscribe(ctx context.Context, name string) error {
	_, canon, err := folderDir(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	mu := m.store.accountLock(m.dir)
	mu.Lock()
	defer mu.Unlock()
	return m.editSubscriptions(addSubscription(canon))
}

// addSubscription is the subscriptions edit that adds one name once.
func addSubscription(canon string) func([]string) []string {
	return func(subs []string) []string {
		for _, s := range subs {
			if s == canon {
				return subs
			}
		}
		return append(subs, canon)
	}
}

// Unsubscribe removes a folder from the subscriptions.
func (m *Mailbox) Unsubscribe(ctx context.Context, name string) error {
	_, canon, err := folderDir(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	mu := m.store.accountLock(m.dir)
	mu.Lock()
	defer mu.Unlock()
	return m.editSubscriptions(func(subs []string) []string {
		out := subs[:0]
		for _, s := range subs {
			if s != canon {
				out = append(out, s)
			}
		}
		return out
	})
}

// editSubscriptions rewrites the file atomically (temporary file, fsync,
// rename) in version 2 format. The account lock must be held.
func (m *Mailbox) editSubscriptions(edit func([]string) []string) error {
	subs, err := m.readSubscriptions()
	if err != nil {
		return err
	}
	before := slices.Clone(subs)
	if subs = edit(subs); slices.Equal(subs, before) {
		// Nothing changed: the file, perhaps Dovecot's version 1, stays
		// as it is.
		return nil
	}
	var b bytes.Buffer
	b.WriteString(subsHeader)
	for _, s := range subs {
		parts := strings.Split(s, Delimiter)
		for i, p := range parts {
			parts[i] = encodeMUTF7(p)
		}
		b.WriteString(strings.Join(parts, "\t"))
		b.WriteByte('\n')
	}
	p := filepath.Join(m.dir, subsName)
	tmp := filepath.Join(m.dir, "tmp", "subscriptions."+strings.TrimSuffix(m.store.uniqueBase(time.Now(), 0), ",S=0"))
	if _, err := writeDurable(context.Background(), tmp, &b); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return ioError("rename", p, err)
	}
	return nil
}
