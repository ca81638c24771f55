package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Recipient is one final destination of a delivery.
type Recipient struct {
	Address string
	// Maildir overrides the path template (see Account.Maildir).
	Maildir string
	// Folder is the IMAP folder name; "" is INBOX. A folder that does not
	// exist is ErrNotFound (the MDA falls back to INBOX if it wants to),
	// except the special-use folders, which are created, and any folder
	// when Create is set (Sieve's fileinto :create).
	Folder string
	Create bool
	// Quota is charged with the message's exact size after it is written to
	// tmp/ and before it becomes visible; ErrOverQuota leaves nothing
	// behind. Nil means no quota. (The MDA's early "already full" check at
	// RCPT time is its own business.)
	Quota Quota
	// Key, when set, is written into the file's unique name (letters and
	// digits only; others are dropped), so a later delivery can tell the
	// message is already there. The MDA uses the queue id of a delivery
	// that may be retried after a crash.
	Key string
	// Once makes a delivery with a Key look for a message with that key in
	// the folder (new/ and cur/) first, and return it instead of writing a
	// second copy: retries after a crash deliver each message once.
	Once bool
	// Flags are IMAP flag names the copy is delivered with (\Seen,
	// \Flagged, $Junk…): system flags become maildir info letters,
	// keywords letters of the folder's dovecot-keywords (new ones are
	// added). A flagged copy goes into cur/ as "<unique>:2,<flags>", as
	// Dovecot's LMTP does for a Sieve addflag; without flags it is new/.
	Flags []string
}

// keyTag is how a Key appears in a unique name.
func keyTag(key string) string {
	var b strings.Builder
	for _, c := range key {
		if (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
			b.WriteRune(c)
		}
		if b.Len() >= 64 {
			break
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return "K" + b.String()
}

// findKey looks for a message delivered with key into the maildir dir.
func findKey(dir, key string) (Delivery, bool) {
	tag := keyTag(key)
	if tag == "" {
		return Delivery{}, false
	}
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if base, _, _ := strings.Cut(e.Name(), ":"); strings.Contains(base, tag+".") {
				d := Delivery{Name: e.Name(), Path: filepath.Join(dir, sub, e.Name()), VirtualSize: -1}
				if fi, err := e.Info(); err == nil {
					d.Size = fi.Size()
				}
				if v, ok := vsizeFromName(base); ok {
					d.VirtualSize = v
				}
				return d, true
			}
		}
	}
	return Delivery{}, false
}

// Delivery is the outcome for one recipient.
type Delivery struct {
	// Name is the message's file name in new/ or cur/ (its maildir
	// unique name, printed in logs as the delivery id).
	Name string
	Path string
	Size int64
	// VirtualSize is the size in CRLF form (the name's W=, what POP3
	// sends); -1 when unknown (a Once delivery found a copy written
	// without it).
	VirtualSize int64
	// Err is set by DeliverMany and DeliverFile for a failed recipient.
	Err error
}

// deliveryDir finds the maildir directory of a recipient's folder. For
// INBOX it does not touch the disk: a missing Maildir is created only when
// the first write into it fails, so the common case costs nothing.
func (s *Store) deliveryDir(rc Recipient) (dir string, inbox bool, err error) {
	root, err := s.MaildirPath(rc.Address, rc.Maildir)
	if err != nil {
		return "", false, err
	}
	if rc.Folder == "" {
		return root, true, nil
	}
	rel, _, err := folderDir(rc.Folder)
	if err != nil {
		return "", false, err
	}
	if rel == "" {
		return root, true, nil
	}
	mb := &Mailbox{store: s, dir: root}
	if _, err := os.Stat(root); err != nil {
		if err := makeMaildir(root); err != nil {
			return "", false, err
		}
	}
	dir, _, err = mb.resolve(rc.Folder, true)
	if errors.Is(err, ErrNotFound) && rc.Create {
		if err := mb.CreateFolder(context.Background(), rc.Folder); err != nil && !errors.Is(err, ErrExists) {
			return "", false, err
		}
		dir, _, err = mb.resolve(rc.Folder, true)
	}
	return dir, false, err
}

// createTmp creates a new file in dir/tmp, creating a missing INBOX
// Maildir on the way.
func (s *Store) createTmp(dir string, inbox bool) (*os.File, string, error) {
	p := filepath.Join(dir, "tmp", s.uniqueBase(time.Now(), 0))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrNotExist) && inbox {
		if err := makeMaildir(dir); err != nil {
			return nil, "", err
		}
		f, err = os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	}
	if err != nil {
		return nil, "", ioError("create", p, err)
	}
	return f, p, nil
}

// fill copies r into f, fsyncs and closes it; a failure removes the file.
func fill(ctx context.Context, f *os.File, r io.Reader) (n, vsize int64, err error) {
	n, vsize, err = write(ctx, f, r)
	if err != nil {
		return 0, 0, err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return 0, 0, ioError("write", f.Name(), err)
	}
	return n, vsize, nil
}

// write copies r into f, leaving it open and not yet fsynced, and counts
// the message's virtual size on the way; a failure closes and removes the
// file.
func write(ctx context.Context, f *os.File, r io.Reader) (n, vsize int64, err error) {
	cw := &CRLFWriter{W: io.Discard}
	n, err = io.Copy(f, io.TeeReader(ctxReader{ctx, r}, cw))
	if err == nil {
		err = cw.Close()
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return 0, 0, ioError("write", f.Name(), err)
	}
	return n, cw.N, nil
}

// Deliver stores one message for one recipient, the MDA's path: write to
// tmp/, fsync, charge the quota, rename into new/ as
// "<unique>,S=<size>,W=<virtual size>", fsync new/. When it returns nil the message is on disk. It takes no lock
// and writes no index (readers give the message its UID on their next
// sync), so deliveries never wait for each other or for IMAP sessions.
func (s *Store) Deliver(ctx context.Context, rc Recipient, r io.Reader) (Delivery, error) {
	if err := ctx.Err(); err != nil {
		return Delivery{}, err
	}
	dir, inbox, err := s.deliveryDir(rc)
	if err != nil {
		return Delivery{}, err
	}
	if rc.Once {
		if d, ok := findKey(dir, rc.Key); ok {
			return d, nil
		}
	}
	f, tmp, err := s.createTmp(dir, inbox)
	if err != nil {
		return Delivery{}, err
	}
	n, vsize, err := fill(ctx, f, r)
	if err != nil {
		return Delivery{}, err
	}
	d := s.commitAll(ctx, []Recipient{rc}, []Delivery{{Name: dir, Path: tmp, Size: n, VirtualSize: vsize}}, nil)[0]
	return d, d.Err
}

// deliveryFlags maps a recipient's flag names for the folder dir. Only
// keywords need the folder's lock (their letters are allocated in
// dovecot-keywords); a delivery without them takes none.
func (s *Store) deliveryFlags(ctx context.Context, dir string, names []string) (Flags, error) {
	var fl Flags
	var keywords []string
	for _, n := range names {
		if strings.EqualFold(n, `\Recent`) {
			continue
		}
		if b, ok := systemFlag(n); ok {
			fl |= b
			continue
		}
		if strings.HasPrefix(n, `\`) {
			return 0, fmt.Errorf("%w: unknown system flag %q", ErrInvalid, n)
		}
		keywords = append(keywords, n)
	}
	if len(keywords) == 0 {
		return fl, nil
	}
	st := s.acquire(dir)
	defer s.release(st)
	if err := st.lock(ctx); err != nil {
		return 0, err
	}
	defer st.unlock()
	kw, err := st.flagsFromNames(keywords, true)
	if err != nil {
		return 0, err
	}
	return fl | kw, nil
}

// uniqueName is a new message's unique name, with rc's Key in it and the
// virtual size as Dovecot writes it (",S=<size>,W=<vsize>").
func (s *Store) uniqueName(rc Recipient, size, vsize int64) string {
	name := withVSize(s.uniqueBase(time.Now(), size), vsize)
	if tag := keyTag(rc.Key); tag != "" {
		// After the random part: "…R0a1b2c3dK<key>.host,S=n".
		if i := strings.IndexByte(name[strings.Index(name, ".")+1:], '.'); i >= 0 {
			i += strings.Index(name, ".") + 1
			name = name[:i] + tag + name[i:]
		}
	}
	return name
}

// DeliverMany stores one message for several recipients, reading r once:
// the first recipient's copy is written and fsynced, the others are hard
// links to it (or copies across file systems). Results are per recipient,
// in order.
func (s *Store) DeliverMany(ctx context.Context, rcpts []Recipient, r io.Reader) []Delivery {
	return s.DeliverGroups(ctx, []Group{{Recipients: rcpts, Body: r}})[0]
}

// Group is one message body and the recipients that get it byte for byte.
type Group struct {
	Recipients []Recipient
	Body       io.Reader
}

// DeliverGroups stores several variants of one message (one per distinct
// header, as when each copy names its own Delivered-To), each as
// DeliverMany does, and makes them durable together: the files are
// written and fsynced at once, the quotas charged in one transaction and
// the directories fsynced at once. The groups' bodies are read
// concurrently. Results are per group and recipient.
func (s *Store) DeliverGroups(ctx context.Context, groups []Group) [][]Delivery {
	var (
		rcpts []Recipient
		out   []Delivery
		found []bool
		files []*os.File
		spans [][2]int // each file's group, as a range of out
	)
	// The groups are staged at once: each creates its own files, and the
	// bodies are independent readers (of one io.ReaderAt, in the MDA).
	type staged struct {
		out   []Delivery
		found []bool
		file  *os.File
	}
	st := make([]staged, len(groups))
	parallel(len(groups), func(gi int) {
		st[gi].out, st[gi].found, st[gi].file = s.stage(ctx, groups[gi])
	})
	for gi, g := range groups {
		if st[gi].file != nil {
			files = append(files, st[gi].file)
			spans = append(spans, [2]int{len(out), len(out) + len(st[gi].out)})
		}
		rcpts, out, found = append(rcpts, g.Recipients...), append(out, st[gi].out...), append(found, st[gi].found...)
	}
	errs := make([]error, len(files))
	parallel(len(files), func(k int) {
		errs[k] = files[k].Sync()
		if err := files[k].Close(); errs[k] == nil {
			errs[k] = err
		}
	})
	for k, err := range errs {
		if err == nil {
			continue
		}
		err = ioError("write", files[k].Name(), err)
		for i := spans[k][0]; i < spans[k][1]; i++ {
			if !found[i] && out[i].Err == nil {
				out[i].Err = err
			}
		}
	}
	out = s.commitAll(ctx, rcpts, out, found)
	res := make([][]Delivery, len(groups))
	for gi, g := range groups {
		res[gi], out = out[:len(g.Recipients)], out[len(g.Recipients):]
	}
	return res
}

// stage puts one group's copies into tmp/ for commitAll: the first
// recipient's file is written (left open, not yet fsynced), the others
// linked to it, all links at once (each waits on its own directory). Each
// entry is staged (Path = tmp file, Name = maildir, Size), failed (Err)
// or already there (found, a Once delivery).
func (s *Store) stage(ctx context.Context, g Group) (out []Delivery, found []bool, file *os.File) {
	out = make([]Delivery, len(g.Recipients))
	found = make([]bool, len(g.Recipients))
	inboxes := make([]bool, len(g.Recipients))
	var links []int // recipients to link to the written file
	writer := -1    // the recipient whose copy was written
	for i, rc := range g.Recipients {
		dir, inbox, err := s.deliveryDir(rc)
		out[i].Name, inboxes[i] = dir, inbox
		if err == nil && rc.Once {
			if d, ok := findKey(dir, rc.Key); ok {
				out[i], found[i] = d, true
				continue
			}
		}
		switch {
		case err != nil:
			out[i].Err = err
		case file != nil:
			links = append(links, i)
		default:
			f, tmp, err := s.createTmp(dir, inbox)
			if err != nil {
				out[i].Err = err
				continue
			}
			size, vsize, err := write(ctx, f, g.Body)
			if err != nil {
				// The stream is spent: nobody after this one can be served.
				for j := i; j < len(out); j++ {
					out[j].Err = err
				}
				return out, found, nil
			}
			file, writer = f, i
			out[i].Path, out[i].Size, out[i].VirtualSize = tmp, size, vsize
		}
	}
	if file == nil {
		return out, found, nil
	}
	spool, first := file.Name(), out[writer]
	parallel(len(links), func(k int) {
		i := links[k]
		tmp, err := s.linkTmp(ctx, out[i].Name, inboxes[i], spool)
		out[i].Path, out[i].Err, out[i].Size, out[i].VirtualSize = tmp, err, first.Size, first.VirtualSize
	})
	return out, found, file
}

// linkTmp links src into dir/tmp under a new unique name (a copy across
// file systems), creating a missing INBOX Maildir on the way.
func (s *Store) linkTmp(ctx context.Context, dir string, inbox bool, src string) (string, error) {
	p := filepath.Join(dir, "tmp", s.uniqueBase(time.Now(), 0))
	err := linkOrCopy(ctx, src, p)
	if err != nil && inbox && errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(filepath.Join(dir, "tmp")); errors.Is(serr, fs.ErrNotExist) {
			if err := makeMaildir(dir); err != nil {
				return "", err
			}
			err = linkOrCopy(ctx, src, p)
		}
	}
	if err != nil {
		return "", err
	}
	return p, nil
}

// parallel runs fn(0) … fn(n-1) at once and waits for them.
func parallel(n int, fn func(int)) {
	if n == 1 {
		fn(0)
		return
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i)
		}()
	}
	wg.Wait()
}

// DeliverFile stores an already spooled, fsynced file (the queue's copy of
// a message) for several recipients by hard-linking it into each maildir.
// The spool file itself is left alone.
func (s *Store) DeliverFile(ctx context.Context, rcpts []Recipient, path string) []Delivery {
	out := make([]Delivery, len(rcpts))
	fi, err := os.Stat(path)
	var vsize int64
	if err == nil {
		// Read once, so that every copy's name carries its W=.
		vsize, err = fileVirtualSize(path)
	}
	if err != nil {
		err = ioError("read", path, err)
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	parallel(len(rcpts), func(i int) {
		dir, inbox, err := s.deliveryDir(rcpts[i])
		var tmp string
		if err == nil {
			tmp, err = s.linkTmp(ctx, dir, inbox, path)
		}
		out[i] = Delivery{Path: tmp, Err: err, Name: dir, Size: fi.Size(), VirtualSize: vsize}
	})
	return s.commitAll(ctx, rcpts, out, nil)
}

// commitAll makes durable tmp/ files visible: out[i] is staged as Path =
// the tmp file, Name = the maildir directory, Size, or carries its Err; entries
// marked found are already delivered and left as they are. However many
// recipients, the quotas are charged in one transaction (on one
// QuotaStore) and the new/ directories are fsynced at once, so that the
// file system commits them together: a fan-out to ten mailboxes costs
// about one delivery's waits, not ten.
func (s *Store) commitAll(ctx context.Context, rcpts []Recipient, out []Delivery, found []bool) []Delivery {
	type staged struct {
		i                int
		size, vsize      int64
		dir, tmp         string
		fl               Flags
		sub, name, final string
	}
	fail := func(i int, err error) {
		out[i] = Delivery{Err: fmt.Errorf("deliver to %s: %w", rcpts[i].Address, err)}
	}
	var todo []staged
	for i := range out {
		if found != nil && found[i] {
			continue
		}
		dir, tmp := out[i].Name, out[i].Path
		if out[i].Err != nil {
			if tmp != "" {
				os.Remove(tmp)
			}
			out[i] = Delivery{Err: out[i].Err}
			continue
		}
		fl, err := s.deliveryFlags(ctx, dir, rcpts[i].Flags)
		if err != nil {
			os.Remove(tmp)
			fail(i, err)
			continue
		}
		todo = append(todo, staged{i: i, size: out[i].Size, vsize: out[i].VirtualSize, dir: dir, tmp: tmp, fl: fl})
	}

	quotas := make([]Quota, len(todo))
	sizes := make([]int64, len(todo))
	for k, st := range todo {
		quotas[k], sizes[k] = rcpts[st.i].Quota, st.size
	}
	qerrs := reserveAll(ctx, quotas, sizes, 1)
	charged := todo[:0]
	for k, st := range todo {
		if qerrs[k] != nil {
			os.Remove(st.tmp)
			fail(st.i, qerrs[k])
			continue
		}
		charged = append(charged, st)
	}

	// Rename every copy, then fsync the directories that changed, at once.
	dirs := map[string]error{}
	var visible []staged
	for _, st := range charged {
		st.sub, st.name = "new", s.uniqueName(rcpts[st.i], st.size, st.vsize)
		if st.fl != 0 {
			st.sub, st.name = "cur", fileName(st.name, st.fl)
		}
		st.final = filepath.Join(st.dir, st.sub, st.name)
		if err := os.Rename(st.tmp, st.final); err != nil {
			os.Remove(st.tmp)
			s.releaseQuota(rcpts[st.i].Quota, st.size, 1)
			fail(st.i, ioError("rename", st.tmp, err))
			continue
		}
		dirs[filepath.Join(st.dir, st.sub)] = nil
		visible = append(visible, st)
	}
	fsyncDirs(dirs)
	for _, st := range visible {
		if err := dirs[filepath.Join(st.dir, st.sub)]; err != nil {
			// Not known to be durable: take it back rather than risk a
			// duplicate when the sender retries after our 4xx.
			os.Remove(st.final)
			s.releaseQuota(rcpts[st.i].Quota, st.size, 1)
			fail(st.i, err)
			continue
		}
		s.hub.publish(st.dir, EventNew)
		out[st.i] = Delivery{Name: st.name, Path: st.final, Size: st.size, VirtualSize: st.vsize}
	}
	return out
}

// fsyncDirs fsyncs each directory of dirs, concurrently when there are
// several (the file system then commits them in one journal transaction),
// and records each one's error.
func fsyncDirs(dirs map[string]error) {
	names := make([]string, 0, len(dirs))
	for d := range dirs {
		names = append(names, d)
	}
	errs := make([]error, len(names))
	parallel(len(names), func(i int) { errs[i] = syncDir(names[i]) })
	for i, d := range names {
		dirs[d] = errs[i]
	}
}

// fileVirtualSize reads the file at path for its virtual size.
func fileVirtualSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return VirtualSize(f)
}
