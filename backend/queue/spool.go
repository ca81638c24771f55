package queue

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vmaild/vmaild/userdb"
)

// The .msg file is the message followed by a footer, so a message of
// unknown length streams straight to disk and the envelope, which needs
// its size, is written after it:
//
//	message bytes | envelope JSON | 8-byte big-endian JSON length | "VMQUEUE1"
//
// A file cut short by a crash lacks the trailing magic and is quarantined.
const (
	footerMagic  = "VMQUEUE1"
	footerLen    = 16
	maxEnvelope  = 16 << 20
	msgSuffix    = ".msg"
	stateSuffix  = ".state"
	tmpDir       = "tmp"
	corruptDir   = "corrupt"
	lockFile     = "lock"
	stsCacheFile = "mta-sts.json" // the MTA-STS policies (tlspolicy.go)
	envVersion   = 1
	stateVersion = 1
)

// State is a recipient's delivery state.
type State string

const (
	Pending   State = "pending"
	Delivered State = "delivered"
	Failed    State = "failed"
)

// Recipient is one recipient of a queued message and how its delivery
// went. It is also the on-disk form in the .state file.
type Recipient struct {
	Addr     string `json:"addr"`
	State    State  `json:"state"`
	Attempts int    `json:"attempts,omitempty"`
	// LastReply is the last SMTP reply or local error, as text.
	LastReply string `json:"last_reply,omitempty"`
	// ReplyCode is the SMTP code of LastReply, 0 when the result did not
	// come from an SMTP server (DNS, connection, local delivery).
	ReplyCode int `json:"reply_code,omitempty"`
	// Status is the RFC 3463 status code of the last result.
	Status      string    `json:"status,omitempty"`
	RemoteMTA   string    `json:"remote_mta,omitempty"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	// TLSPolicy names the TLS policy of the last attempt ("dane",
	// "mta-sts enforce", "table verify", "may", …).
	TLSPolicy   string    `json:"tls_policy,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Notified is set once a failure has been reported to the sender (or
	// deliberately not, for a null sender).
	Notified bool `json:"notified,omitempty"`
	// Final is the enqueuer's mark that Addr is a local mailbox it has
	// already resolved (EnqueueHeld, EnqueueRetry): Config.Local gets it
	// with the address, and the delivery agent delivers to exactly that
	// mailbox instead of expanding the address again. The queue only
	// carries it; it is kept in the envelope, written once with the
	// message, not in the .state file.
	Final bool `json:"-"`

	domain string // lower-case, for grouping by destination
}

// envelope is the JSON in the .msg footer; it never changes.
type envelope struct {
	Version int       `json:"v"`
	ID      string    `json:"id"`
	From    string    `json:"from"`
	Rcpts   []string  `json:"rcpts"`
	Created time.Time `json:"created"`
	Size    int64     `json:"size"`
	Bounce  bool      `json:"bounce,omitempty"`
	// Final lists the recipients marked final (Recipient.Final). Files
	// written before the mark existed have none: their recipients are
	// resolved again, as they always were.
	Final []string `json:"final,omitempty"`
	// RequireTLS: the message arrived with REQUIRETLS (RFC 8689) and
	// goes on only over authenticated TLS.
	RequireTLS bool `json:"requiretls,omitempty"`
}

type stateFile struct {
	Version    int         `json:"v"`
	Recipients []Recipient `json:"recipients"`
	// Held is the admin's hold (Queue.Hold): kept across restarts until
	// Queue.Unhold. Files without it, older ones included, are not held.
	Held bool `json:"held,omitempty"`
}

// item is a queued message in memory: the envelope, the recipients' state
// and scheduling bookkeeping. Fields below mu-protected are guarded by
// Queue.mu.
type item struct {
	ID      string
	From    string
	Created time.Time
	Size    int64
	Bounce  bool
	// RequireTLS is the envelope's REQUIRETLS mark.
	RequireTLS bool
	rcpts      []Recipient

	held     bool            // spooled by EnqueueHeld, not scheduled until Release
	onHold   bool            // the admin's hold (Hold), persisted; not scheduled until Unhold
	busy     map[string]bool // destination domain → job queued or running
	inflight int             // jobs running
	deleted  bool
	done     bool // every recipient final and files removed

	persistMu sync.Mutex // orders state file writes of one item
}

// needsSettle reports whether an item has failures not yet reported to
// its sender, or nothing left to do. Caller holds Queue.mu.
func (it *item) needsSettle() bool {
	pending := false
	for _, r := range it.rcpts {
		if r.State == Failed && !r.Notified {
			return true
		}
		if r.State == Pending {
			pending = true
		}
	}
	return !pending
}

// newEnvelope checks an envelope: valid addresses, at least one recipient,
// final a subset of rcpts. Duplicates are dropped, the order kept.
func newEnvelope(from string, rcpts, final []string, bounce bool) (*envelope, error) {
	if from != "" {
		if _, _, err := userdb.Split(from); err != nil {
			return nil, fmt.Errorf("%w: sender %q: %w", ErrInvalid, from, err)
		}
	}
	if len(rcpts) == 0 {
		return nil, fmt.Errorf("%w: no recipients", ErrInvalid)
	}
	seen := make(map[string]bool, len(rcpts))
	out := make([]string, 0, len(rcpts))
	for _, r := range rcpts {
		if _, _, err := userdb.Split(r); err != nil {
			return nil, fmt.Errorf("%w: recipient %q: %w", ErrInvalid, r, err)
		}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	var marked []string
	for _, f := range final {
		if !seen[f] {
			return nil, fmt.Errorf("%w: final recipient %q is not a recipient", ErrInvalid, f)
		}
		if !slices.Contains(marked, f) {
			marked = append(marked, f)
		}
	}
	return &envelope{Version: envVersion, From: from, Rcpts: out, Final: marked, Bounce: bounce}, nil
}

// newID returns a queue id: creation time then randomness, in hex, so ids
// sort by age and are safe as file names.
func newID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	rand.Read(b[8:])
	return hex.EncodeToString(b[:])
}

// validID guards the admin API against path tricks in ids.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

type spool struct {
	dir  string
	log  *slog.Logger
	lock *os.File

	renames atomic.Uint64 // renames into dir completed
	syncMu  sync.Mutex
	synced  uint64 // renames covered by a directory fsync
}

func openSpool(dir string, log *slog.Logger) (*spool, error) {
	for _, d := range []string{dir, filepath.Join(dir, tmpDir), filepath.Join(dir, corruptDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("queue: create spool: %w", err)
		}
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("queue: open spool lock: %w", err)
	}
	// Two queues on one spool would deliver everything twice.
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("queue: lock spool: %w", err)
	}
	return &spool{dir: dir, log: log, lock: lf}, nil
}

func (s *spool) close() {
	if s.lock != nil {
		s.lock.Close() // releases the flock
		s.lock = nil
	}
}

func (s *spool) msgPath(id string) string   { return filepath.Join(s.dir, id+msgSuffix) }
func (s *spool) statePath(id string) string { return filepath.Join(s.dir, id+stateSuffix) }

// syncDir makes every rename done so far durable. Concurrent callers share
// one fsync: whoever gets the lock syncs for everyone who renamed before.
func (s *spool) syncDir(mine uint64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced >= mine {
		return nil
	}
	target := s.renames.Load()
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("queue: sync spool dir: %w", err)
	}
	err = d.Sync()
	d.Close()
	if err != nil {
		return fmt.Errorf("queue: sync spool dir: %w", err)
	}
	s.synced = target
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// write spools a new item: message and footer into tmp/, fsync, rename
// into the spool, fsync the directory. size < 0 means unknown.
func (s *spool) write(ctx context.Context, env *envelope, msg io.Reader, size int64) (_ *item, err error) {
	now := time.Now().UTC()
	env.ID = newID(now)
	env.Created = now
	tmp := filepath.Join(s.dir, tmpDir, env.ID+msgSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("queue: spool %s: %w", env.ID, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, ok := msg.(io.WriterTo); !ok {
		msg = ctxReader{ctx, msg}
	}
	n, err := io.Copy(f, msg)
	if err != nil {
		return nil, fmt.Errorf("queue: spool %s: write message: %w", env.ID, err)
	}
	if size >= 0 && n != size {
		return nil, fmt.Errorf("queue: spool %s: message is %d bytes, expected %d", env.ID, n, size)
	}
	env.Size = n
	js, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("queue: spool %s: %w", env.ID, err)
	}
	footer := make([]byte, 0, len(js)+footerLen)
	footer = append(footer, js...)
	footer = binary.BigEndian.AppendUint64(footer, uint64(len(js)))
	footer = append(footer, footerMagic...)
	if _, err = f.Write(footer); err != nil {
		return nil, fmt.Errorf("queue: spool %s: write envelope: %w", env.ID, err)
	}
	if err = f.Sync(); err != nil {
		return nil, fmt.Errorf("queue: spool %s: fsync: %w", env.ID, err)
	}
	if err = f.Close(); err != nil {
		return nil, fmt.Errorf("queue: spool %s: close: %w", env.ID, err)
	}
	if err = ctx.Err(); err != nil {
		return nil, fmt.Errorf("queue: spool %s: %w", env.ID, err)
	}
	if err = os.Rename(tmp, s.msgPath(env.ID)); err != nil {
		return nil, fmt.Errorf("queue: spool %s: %w", env.ID, err)
	}
	if err = s.syncDir(s.renames.Add(1)); err != nil {
		// The message may or may not survive a crash: refuse it so the
		// client retries, and do not deliver what we refused.
		os.Remove(s.msgPath(env.ID))
		return nil, err
	}
	return itemFromEnvelope(env), nil
}

func itemFromEnvelope(env *envelope) *item {
	it := &item{ID: env.ID, From: env.From, Created: env.Created, Size: env.Size, Bounce: env.Bounce, RequireTLS: env.RequireTLS}
	it.rcpts = make([]Recipient, len(env.Rcpts))
	for i, r := range env.Rcpts {
		it.rcpts[i] = Recipient{Addr: r, State: Pending, NextAttempt: env.Created, Final: slices.Contains(env.Final, r)}
		it.rcpts[i].domain = rcptDomain(r)
	}
	return it
}

func rcptDomain(addr string) string {
	_, d, err := userdb.Split(addr)
	if err != nil {
		// Only validated addresses reach the spool; keep going anyway.
		return strings.ToLower(addr[strings.LastIndexByte(addr, '@')+1:])
	}
	return d
}

// saveState replaces the item's .state file atomically. The file is
// fsynced (a rename of unsynced data can leave an empty file after a
// crash) but the directory is not: losing the rename only means retrying
// recipients that were already done, never losing one.
func (s *spool) saveState(id string, rcpts []Recipient, onHold bool) error {
	js, err := json.Marshal(stateFile{Version: stateVersion, Recipients: rcpts, Held: onHold})
	if err != nil {
		return fmt.Errorf("queue: state %s: %w", id, err)
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, tmpDir), id+stateSuffix+".*")
	if err != nil {
		return fmt.Errorf("queue: state %s: %w", id, err)
	}
	tmp := f.Name()
	_, err = f.Write(js)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.statePath(id))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("queue: state %s: %w", id, err)
	}
	return nil
}

// remove deletes a finished item. With a .state file the message goes
// first, made durable, then the state: a crash in between leaves an
// orphan .state, which load discards, where the other order could bring
// the message back without its state and deliver it to everyone again.
// Without a .state file (delivered at the first attempt) the directory is
// not synced: a crash may then undo the removal and deliver again, the
// usual at-least-once trade of MTAs, which saves an fsync per message.
// Callers hold the item's persistMu, so no state file appears meanwhile.
func (s *spool) remove(id string) error {
	_, err := os.Lstat(s.statePath(id))
	hasState := err == nil
	if err := os.Remove(s.msgPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("queue: remove %s: %w", id, err)
	}
	if !hasState {
		return nil
	}
	if err := s.syncDir(s.renames.Add(1)); err != nil {
		return err
	}
	if err := os.Remove(s.statePath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("queue: remove %s: %w", id, err)
	}
	return nil
}

// open returns the message of a spooled item.
func (s *spool) open(id string, size int64) (*os.File, *io.SectionReader, error) {
	f, err := os.Open(s.msgPath(id))
	if err != nil {
		return nil, nil, fmt.Errorf("queue: open %s: %w", id, err)
	}
	return f, io.NewSectionReader(f, 0, size), nil
}

// quarantine moves a spool file that cannot be read into corrupt/, for an
// admin to look at.
func (s *spool) quarantine(name, reason string) {
	dst := filepath.Join(s.dir, corruptDir, name)
	if _, err := os.Lstat(dst); err == nil {
		dst += fmt.Sprintf(".%d", time.Now().UnixNano())
	}
	if err := os.Rename(filepath.Join(s.dir, name), dst); err != nil {
		s.log.Error("queue: cannot quarantine spool file", "file", name, "reason", reason, "err", err)
		return
	}
	s.log.Error("queue: quarantined corrupt spool file", "file", name, "moved_to", dst, "reason", reason)
}

// load reads every item in the spool. Unreadable items are quarantined,
// leftovers of interrupted writes removed; neither stops the load.
func (s *spool) load() ([]*item, error) {
	tmps, err := os.ReadDir(filepath.Join(s.dir, tmpDir))
	if err != nil {
		return nil, fmt.Errorf("queue: read spool: %w", err)
	}
	for _, e := range tmps {
		// A message here was never acknowledged (no 250 was sent), a
		// state file here was superseded or never took effect.
		os.Remove(filepath.Join(s.dir, tmpDir, e.Name()))
		s.log.Warn("queue: removed unfinished spool write", "file", filepath.Join(tmpDir, e.Name()))
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("queue: read spool: %w", err)
	}
	msgs := make(map[string]bool)
	states := make(map[string]bool)
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == tmpDir || name == corruptDir || name == lockFile || name == stsCacheFile || name == stsCacheFile+".tmp":
		case !e.Type().IsRegular():
			s.log.Warn("queue: ignoring unexpected entry in spool", "file", name)
		case strings.HasSuffix(name, msgSuffix):
			msgs[strings.TrimSuffix(name, msgSuffix)] = true
		case strings.HasSuffix(name, stateSuffix):
			states[strings.TrimSuffix(name, stateSuffix)] = true
		default:
			s.log.Warn("queue: ignoring unexpected file in spool", "file", name)
		}
	}
	var items []*item
	for id := range msgs {
		it, err := s.loadItem(id, states[id])
		if err != nil {
			s.quarantine(id+msgSuffix, err.Error())
			if states[id] {
				s.quarantine(id+stateSuffix, err.Error())
			}
			continue
		}
		items = append(items, it)
	}
	for id := range states {
		if !msgs[id] {
			// The item finished and a crash came between removing its
			// message and its state.
			os.Remove(s.statePath(id))
			s.log.Warn("queue: removed state of finished item", "queue_id", id)
		}
	}
	return items, nil
}

func (s *spool) loadItem(id string, hasState bool) (*item, error) {
	env, err := readEnvelope(s.msgPath(id))
	if err != nil {
		return nil, err
	}
	if env.ID != id {
		return nil, fmt.Errorf("envelope id %q does not match file name", env.ID)
	}
	if _, err := newEnvelope(env.From, env.Rcpts, env.Final, env.Bounce); err != nil {
		return nil, err
	}
	it := itemFromEnvelope(env)
	if !hasState {
		return it, nil
	}
	data, err := os.ReadFile(s.statePath(id))
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("parse state: %w", err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state version %d not understood", st.Version)
	}
	if len(st.Recipients) != len(it.rcpts) {
		return nil, fmt.Errorf("state has %d recipients, envelope %d", len(st.Recipients), len(it.rcpts))
	}
	for i, r := range st.Recipients {
		if r.Addr != it.rcpts[i].Addr {
			return nil, fmt.Errorf("state recipient %q does not match envelope %q", r.Addr, it.rcpts[i].Addr)
		}
		switch r.State {
		case Pending, Delivered, Failed:
		default:
			return nil, fmt.Errorf("recipient %q has unknown state %q", r.Addr, r.State)
		}
		r.domain, r.Final = it.rcpts[i].domain, it.rcpts[i].Final
		it.rcpts[i] = r
	}
	it.onHold = st.Held
	return it, nil
}

// readEnvelope reads and checks the footer of a .msg file.
func readEnvelope(path string) (*envelope, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < footerLen {
		return nil, fmt.Errorf("truncated: %d bytes", size)
	}
	var foot [footerLen]byte
	if _, err := f.ReadAt(foot[:], size-footerLen); err != nil {
		return nil, fmt.Errorf("read footer: %w", err)
	}
	if string(foot[8:]) != footerMagic {
		return nil, errors.New("truncated or not a queue file: no footer")
	}
	jlen := binary.BigEndian.Uint64(foot[:8])
	if jlen == 0 || jlen > maxEnvelope || int64(jlen) > size-footerLen {
		return nil, fmt.Errorf("bad envelope length %d", jlen)
	}
	js := make([]byte, jlen)
	if _, err := f.ReadAt(js, size-footerLen-int64(jlen)); err != nil {
		return nil, fmt.Errorf("read envelope: %w", err)
	}
	var env envelope
	if err := json.Unmarshal(js, &env); err != nil {
		return nil, fmt.Errorf("parse envelope: %w", err)
	}
	if env.Version != envVersion {
		return nil, fmt.Errorf("envelope version %d not understood", env.Version)
	}
	if env.Size != size-footerLen-int64(jlen) {
		return nil, fmt.Errorf("message is %d bytes, envelope says %d", size-footerLen-int64(jlen), env.Size)
	}
	if env.Created.IsZero() {
		return nil, errors.New("envelope has no creation time")
	}
	return &env, nil
}
