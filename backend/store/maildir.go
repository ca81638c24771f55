package store

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"
)

// Flags is a message's flag set: the six maildir system flags in the low
// bits and up to 26 keywords (maildir letters a–z, named per folder by the
// dovecot-keywords file) above them.
type Flags uint32

// The maildir system flags, in the order of their info letters (DFPRST).
const (
	FlagDraft    Flags = 1 << iota // D, \Draft
	FlagFlagged                    // F, \Flagged
	FlagPassed                     // P, $Forwarded (resent/forwarded/bounced)
	FlagAnswered                   // R, \Answered (maildir "replied")
	FlagSeen                       // S, \Seen
	FlagDeleted                    // T, \Deleted (maildir "trashed")
)

const (
	systemFlagMask = Flags(1<<6 - 1)
	maxKeywords    = 26
	sysLetters     = "DFPRST"
)

// IMAP names of the system flags, indexed like sysLetters.
var sysNames = [6]string{`\Draft`, `\Flagged`, "$Forwarded", `\Answered`, `\Seen`, `\Deleted`}

func keywordFlag(i int) Flags { return 1 << (6 + i) }

// Has reports whether every flag of g is set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// systemFlag maps an IMAP system flag name (case-insensitive) to its bit.
func systemFlag(name string) (Flags, bool) {
	for i, n := range sysNames {
		if strings.EqualFold(n, name) {
			return 1 << i, true
		}
	}
	return 0, false
}

// infoSep is the maildir info separator. Dovecot's default is ':'; trees
// written with maildir_broken_filename_chars use another one we do not read.
const infoSep = ":2,"

// splitName splits a maildir file name into its base (the part that never
// changes: "<unique>,S=<size>,W=<vsize>") and its flags.
func splitName(name string) (base string, flags Flags) {
	// The first ':' nearly always starts the info: look for it first,
	// a cheaper search than for infoSep (a scan splits 100,000 names).
	i := strings.IndexByte(name, ':')
	if i >= 0 && !strings.HasPrefix(name[i:], infoSep) {
		i = strings.Index(name, infoSep)
	}
	if i < 0 {
		// Some writers use ":1," or a bare ":"; the base still ends there.
		if j := strings.IndexByte(name, ':'); j >= 0 {
			return name[:j], 0
		}
		return name, 0
	}
	for _, c := range name[i+len(infoSep):] {
		switch {
		case c >= 'a' && c <= 'z':
			flags |= keywordFlag(int(c - 'a'))
		default:
			if j := strings.IndexRune(sysLetters, c); j >= 0 {
				flags |= 1 << j
			}
		}
	}
	return name[:i], flags
}

// fileName is the name of a message with base and flags, flag letters
// sorted as the maildir spec asks (system flags, then keywords).
func fileName(base string, flags Flags) string {
	var b strings.Builder
	b.Grow(len(base) + len(infoSep) + 8)
	b.WriteString(base)
	b.WriteString(infoSep)
	for i := 0; i < 6; i++ {
		if flags&(1<<i) != 0 {
			b.WriteByte(sysLetters[i])
		}
	}
	for i := 0; i < maxKeywords; i++ {
		if flags&keywordFlag(i) != 0 {
			b.WriteByte(byte('a' + i))
		}
	}
	return b.String()
}

// sizeFromName reads the ",S=<octets>" field Dovecot and vmaild put in the
// base name, so that indexing never has to stat a message.
func sizeFromName(base string) (int64, bool) {
	return fieldFromName(base, ",S=")
}

// timeFromName reads the delivery time (the leading decimal seconds every
// maildir writer puts first) as the internal date.
func timeFromName(base string) (time.Time, bool) {
	i := strings.IndexByte(base, '.')
	if i <= 0 || i > 12 {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(base[:i], 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// validFileName refuses directory entries we must not treat as messages:
// dot files (maildir spec), and names we could not store in the index line
// format or that are absurdly long.
func validFileName(name string) bool {
	if name == "" || name[0] == '.' || len(name) > 255 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f || c == '/' {
			return false
		}
	}
	return true
}

// uniqueBase makes a new maildir base name in Dovecot's style
// ("<secs>.M<usecs>P<pid>Q<seq>R<random>.<host>,S=<size>"): the Store's
// sequence makes it unique within the process, the pid across processes on
// the host, the random part across Store values and pid reuse (it needs
// to differ, not to be secret: math/rand's generator, no system call).
func (s *Store) uniqueBase(now time.Time, size int64) string {
	// The microseconds are zero-padded: new messages of one second get
	// their UIDs in name order, which is then arrival order.
	return fmt.Sprintf("%d.M%06dP%dQ%dR%08x.%s,S=%d", now.Unix(), now.Nanosecond()/1000,
		os.Getpid(), s.seq.Add(1), rand.Uint32(), s.host(), size)
}

// sanitizeHost escapes what may not appear in a maildir base name, as the
// maildir spec and Dovecot do ('/' → \057, ':' → \072, ',' → \054).
func sanitizeHost(h string) string {
	if h == "" {
		return "localhost"
	}
	r := strings.NewReplacer("/", `\057`, ":", `\072`, ",", `\054`, "\n", "", " ", "")
	return r.Replace(h)
}

// ctxReader stops a long copy when the caller gives up (a client that
// disconnects during APPEND, an SMTP session that times out).
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

// writeDurable writes r into a new file at path and fsyncs it; on any error
// the partial file is removed, so a tmp/ leftover only exists after a crash.
func writeDurable(ctx context.Context, path string, r io.Reader) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, ioError("create", path, err)
	}
	n, err := io.Copy(f, ctxReader{ctx, r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return 0, ioError("write", path, err)
	}
	return n, nil
}

// writeMessage is writeDurable for a message: it also returns the
// message's virtual size, counted on the way.
func writeMessage(ctx context.Context, path string, r io.Reader) (n, vsize int64, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, 0, ioError("create", path, err)
	}
	return fill(ctx, f, r)
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return ioError("open dir", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return ioError("fsync dir", dir, err)
}

// makeMaildir creates cur/, new/ and tmp/ under dir (and dir itself).
func makeMaildir(dir string) error {
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(dir+"/"+sub, 0o700); err != nil {
			return ioError("mkdir", dir+"/"+sub, err)
		}
	}
	return nil
}
