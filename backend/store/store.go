package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmaild/vmaild/userdb"
)

// DefaultPathTemplate is Dovecot's usual virtual-user layout.
const DefaultPathTemplate = "%d/%n/Maildir"

// DefaultIdleFolders and DefaultIdleMessages bound the folder states
// kept in memory when no session has them open (Store.IdleFolders).
const (
	DefaultIdleFolders  = 32
	DefaultIdleMessages = 500_000
)

// DefaultTmpMaxAge is how old a file in tmp/ must be before it is taken for
// the leftover of a crashed writer and removed (the maildir spec's 36 hours).
const DefaultTmpMaxAge = 36 * time.Hour

// Store is the mail store of one installation. The zero value works (Root
// "" is the current directory); set fields before first use and do not copy
// a Store after that. A Store owns the in-process registry of open folders
// (so every session of one folder shares one index) and the notification
// hub, which is why all sessions and deliveries of a process must use the
// same Store.
type Store struct {
	// Root is the directory under which PathTemplate is expanded.
	Root string
	// PathTemplate places an account's Maildir under Root: %d is the
	// domain, %n the local part, %u the whole address, %% a percent sign.
	// Empty means DefaultPathTemplate.
	PathTemplate string
	// TmpMaxAge: files in a folder's tmp/ older than this are removed when
	// the folder is opened. Zero means DefaultTmpMaxAge. In-flight writes of
	// other processes are younger, which is what makes this safe.
	TmpMaxAge time.Duration
	// SpecialFolders are created on first use and listed with their
	// RFC 6154 attribute. Nil means DefaultSpecialFolders().
	SpecialFolders []SpecialFolder
	// Hostname goes into new maildir file names; empty means os.Hostname.
	Hostname string
	// Logger receives index repairs and cleanup notes; nil discards them.
	Logger *slog.Logger
	// IdleFolders is how many folders nobody has open stay in memory, so
	// that selecting one again (a client reconnecting, STATUS of every
	// folder) reads nothing but what changed. Zero means
	// DefaultIdleFolders; negative keeps none.
	IdleFolders int
	// IdleMessages bounds the messages of those idle folders together.
	// Zero means DefaultIdleMessages.
	IdleMessages int

	hostOnce sync.Once
	hostname string

	mu      sync.Mutex
	folders map[string]*folderState // by folder directory
	idle    []*folderState          // folders nobody has open, oldest first
	// accounts serialises folder-tree and subscription changes of one
	// account; striped so the registry does not grow with every account.
	accounts [64]sync.Mutex
	hub      hub

	// modLogLimit replaces maxModLog when positive (tests).
	modLogLimit int

	seq      atomic.Uint64 // unique file names
	validity atomic.Uint32 // last UIDVALIDITY handed out
}

// SpecialFolder is a folder with an RFC 6154 special use.
type SpecialFolder struct {
	Name string // IMAP name, e.g. "Sent"
	Use  string // attribute, e.g. `\Sent`
}

// DefaultSpecialFolders are the folders Dovecot's default configuration
// auto-creates and marks.
func DefaultSpecialFolders() []SpecialFolder {
	return []SpecialFolder{
		{"Drafts", `\Drafts`}, {"Sent", `\Sent`}, {"Trash", `\Trash`}, {"Junk", `\Junk`},
	}
}

// Account says whose mailbox to open and how.
type Account struct {
	// Address is the account's address; it is canonicalised (lower case).
	Address string
	// Maildir overrides the path template (LDAP mailMessageStore, the SQL
	// maildir column): absolute, or relative to Root. A Dovecot-style
	// "maildir:" prefix and ":OPTION" suffixes are accepted and ignored.
	Maildir string
	// Quota is charged by Append and Copy and credited by Expunge and
	// DeleteFolder; nil means unlimited and unaccounted.
	Quota Quota
}

func (s *Store) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Store) host() string {
	s.hostOnce.Do(func() {
		h := s.Hostname
		if h == "" {
			h, _ = os.Hostname()
		}
		s.hostname = sanitizeHost(h)
	})
	return s.hostname
}

func (s *Store) tmpMaxAge() time.Duration {
	if s.TmpMaxAge > 0 {
		return s.TmpMaxAge
	}
	return DefaultTmpMaxAge
}

func (s *Store) special() []SpecialFolder {
	if s.SpecialFolders != nil {
		return s.SpecialFolders
	}
	return DefaultSpecialFolders()
}

// FolderExists says whether acct's folder name exists, or is a
// special-use folder the store creates on first use (Sieve's
// mailboxexists: a fileinto there will succeed). It only looks: unlike
// OpenMailbox it creates nothing.
func (s *Store) FolderExists(acct Account, name string) bool {
	dir, err := s.MaildirPath(acct.Address, acct.Maildir)
	if err != nil {
		return false
	}
	rel, canonical, err := folderDir(name)
	if err != nil {
		return false
	}
	if rel == "" || slices.ContainsFunc(s.special(), func(sf SpecialFolder) bool { return sf.Name == canonical }) {
		return true
	}
	_, err = os.Stat(filepath.Join(dir, rel, "cur"))
	return err == nil
}

// newUIDValidity returns a UIDVALIDITY that is the current time but never
// repeats one this Store handed out before, so a folder deleted and created
// again within one second still gets a new value.
func (s *Store) newUIDValidity(atLeast uint32) uint32 {
	for {
		last := s.validity.Load()
		v := uint32(time.Now().Unix())
		if v <= last {
			v = last + 1
		}
		if v < atLeast {
			v = atLeast
		}
		if v == 0 {
			v = 1
		}
		if s.validity.CompareAndSwap(last, v) {
			return v
		}
	}
}

// MaildirPath returns the Maildir of an account: the override when given,
// else PathTemplate expanded under Root. Every expanded value is one path
// element, so no address can point outside Root.
func (s *Store) MaildirPath(address, override string) (string, error) {
	root := s.Root
	if root == "" {
		root = "."
	}
	if override != "" {
		p := strings.TrimPrefix(override, "maildir:")
		if i := strings.IndexByte(p, ':'); i >= 0 {
			p = p[:i]
		}
		if p == "" || strings.ContainsRune(p, 0) {
			return "", fmt.Errorf("%w: maildir path %q", ErrInvalid, override)
		}
		if filepath.IsAbs(p) {
			return filepath.Clean(p), nil
		}
		return within(root, p)
	}
	local, domain, err := userdb.Split(address)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	tmpl := s.PathTemplate
	if tmpl == "" {
		tmpl = DefaultPathTemplate
	}
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] != '%' {
			b.WriteByte(tmpl[i])
			continue
		}
		i++
		if i == len(tmpl) {
			return "", fmt.Errorf("%w: path template %q ends in %%", ErrInvalid, tmpl)
		}
		var v string
		switch tmpl[i] {
		case 'd':
			v = domain
		case 'n':
			v = local
		case 'u':
			v = local + "@" + domain
		case '%':
			b.WriteByte('%')
			continue
		default:
			return "", fmt.Errorf("%w: path template %q: unknown %%%c", ErrInvalid, tmpl, tmpl[i])
		}
		if v == "." || v == ".." || strings.ContainsAny(v, "/\x00") {
			return "", fmt.Errorf("%w: %q cannot be a path element", ErrInvalid, v)
		}
		b.WriteString(v)
	}
	return within(root, b.String())
}

// within joins rel to root and refuses results outside root.
func within(root, rel string) (string, error) {
	p := filepath.Join(root, rel)
	r, err := filepath.Rel(root, p)
	if err != nil || r == ".." || strings.HasPrefix(r, "../") {
		return "", fmt.Errorf("%w: maildir %q escapes the store root", ErrInvalid, rel)
	}
	return p, nil
}

// OpenMailbox opens (creating on first use) the Maildir of an account. The
// first open of a new account (its first login) also creates and subscribes
// the special-use folders, so a client sees them before it lists anything;
// an existing Maildir gets the missing ones when they are first listed or
// used, as Dovecot's auto=subscribe does.
func (s *Store) OpenMailbox(ctx context.Context, acct Account) (*Mailbox, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir, err := s.MaildirPath(acct.Address, acct.Maildir)
	if err != nil {
		return nil, err
	}
	_, err = os.Stat(filepath.Join(dir, "cur"))
	fresh := errors.Is(err, fs.ErrNotExist)
	if err := makeMaildir(dir); err != nil {
		return nil, err
	}
	mb := &Mailbox{store: s, dir: dir, address: acct.Address, quota: acct.Quota}
	if fresh {
		if err := mb.ensureSpecial(); err != nil {
			return nil, fmt.Errorf("new account %s: %w", acct.Address, err)
		}
	}
	mb.removeDeletedLeftovers()
	return mb, nil
}

// acquire returns the shared state of a folder directory, creating it on
// first use; release drops the reference.
func (s *Store) acquire(dir string) *folderState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.folders == nil {
		s.folders = make(map[string]*folderState)
	}
	st := s.folders[dir]
	if st != nil && st.gone.Load() {
		// Deleted by another program and since recreated, maybe.
		delete(s.folders, dir)
		if st.refs == 0 {
			s.dropIdle(st)
		}
		st = nil
	}
	if st == nil {
		st = newFolderState(s, dir)
		s.folders[dir] = st
	}
	if st.refs == 0 {
		s.idle = slices.DeleteFunc(s.idle, func(x *folderState) bool { return x == st })
	}
	st.refs++
	return st
}

// release drops a reference; the last one keeps the state in memory
// among the idle ones, or closes it. Keeping it is safe because every use
// starts by comparing it with the disk (the index's size and inode, the
// directories' mtimes).
func (s *Store) release(st *folderState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.refs--
	if st.refs != 0 {
		return
	}
	if s.folders[st.dir] != st || st.gone.Load() {
		st.close()
		return
	}
	s.idle = append(s.idle, st)
	maxN, maxMsgs := s.IdleFolders, s.IdleMessages
	if maxN == 0 {
		maxN = DefaultIdleFolders
	}
	if maxMsgs == 0 {
		maxMsgs = DefaultIdleMessages
	}
	total := 0
	for _, x := range s.idle {
		total += x.size()
	}
	for len(s.idle) > 0 && (len(s.idle) > maxN || total > maxMsgs) {
		x := s.idle[0]
		total -= x.size()
		s.dropIdle(x)
	}
}

// dropIdle forgets an idle state; s.mu must be held.
func (s *Store) dropIdle(st *folderState) {
	s.idle = slices.DeleteFunc(s.idle, func(x *folderState) bool { return x == st })
	if s.folders[st.dir] == st {
		delete(s.folders, st.dir)
	}
	st.close()
}

// forget detaches the state of dir, and with tree those of its Maildir++
// children (rename, delete): sessions holding them see ErrNotFound from
// then on.
func (s *Store) forget(dir string, tree bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for d, st := range s.folders {
		if d == dir || tree && strings.HasPrefix(d, dir+".") {
			delete(s.folders, d)
			st.gone.Store(true)
			if st.refs == 0 {
				s.dropIdle(st)
			}
		}
	}
}

// accountLock serialises changes of one account's folder tree and
// subscriptions within this process.
func (s *Store) accountLock(dir string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(dir))
	return &s.accounts[h.Sum32()%uint32(len(s.accounts))]
}
