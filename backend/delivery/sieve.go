package delivery

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmaild/vmaild/backend/sieve"
	"github.com/vmaild/vmaild/backend/sievestore"
)

// Sieve is the filter that runs each destination's active Sieve script
// (Pigeonhole's layout in the mail home beside the Maildir: .dovecot.sieve
// → sieve/NAME.sieve), between the administrator's Before and After
// scripts, and turns their actions into the Decision: copies
// into folders with flags, discard, redirects, reject and vacation
// replies. A script that does not compile or fails at run time keeps the
// message in INBOX (RFC 5228 section 2.10.6), as Pigeonhole does; only
// an unreadable mail home tempfails the destination.
type Sieve struct {
	// Maildir is the Maildir of an account (store.Store.MaildirPath).
	Maildir func(address, override string) (string, error)
	// Cache compiles each script once; nil: a cache of the filter's own.
	Cache *sievestore.Cache
	// Before and After are the administrator's scripts around the
	// user's (Config.SieveBefore, Config.SieveAfter).
	Before, After []string
	// RecipientDelimiter joins user and detail in the envelope recipient
	// the script sees (user+detail@domain); "" is "+".
	RecipientDelimiter string
	// Vacation, when set, turns a vacation action into the reply to send,
	// or nil when none is due: de-duplication per sender and handle, and
	// never answering lists, bulk, auto-submitted mail or <>, are its
	// rules. Nil: vacation actions are logged and not answered.
	Vacation func(ctx context.Context, m *Mail, p *sieve.VacationParams) (*Reply, error)
	// Verdicts, when set, gives the inbound scanners' results for
	// spamtest and virustest.
	Verdicts func(m *Mail) (spam, virus sieve.Verdict)
	// MailboxExists answers mailboxexists for a destination; nil: only
	// INBOX exists.
	MailboxExists func(d *Destination, name string) bool
	Logger        *slog.Logger

	once  sync.Once
	cache *sievestore.Cache
}

func (f *Sieve) log() *slog.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return slog.Default()
}

func (f *Sieve) scripts() *sievestore.Cache {
	if f.Cache != nil {
		return f.Cache
	}
	f.once.Do(func() { f.cache = &sievestore.Cache{} })
	return f.cache
}

// parse reads msg for a script (one with a script per destination).
func (f *Sieve) parse(msg Message) (*sieve.Message, error) {
	raw, err := io.ReadAll(io.NewSectionReader(msg, 0, msg.Size()))
	if err != nil {
		return nil, err
	}
	return sieve.ParseMessage(raw), nil
}

// Paths are the script files that run for dest, in order: the
// administrator's before scripts, the account's active script (if any),
// the after scripts.
func (f *Sieve) Paths(dest *Destination) ([]string, error) {
	_, domain, _ := strings.Cut(dest.Address, "@")
	paths, err := adminScripts(f.Before, domain)
	if err != nil {
		return nil, err
	}
	maildir, err := f.Maildir(dest.Address, dest.Maildir)
	if err != nil {
		return nil, err
	}
	_, active, err := sievestore.Scripts{Home: sievestore.HomeOf(maildir)}.Active()
	if err != nil {
		return nil, err
	}
	if active != "" {
		paths = append(paths, active)
	}
	after, err := adminScripts(f.After, domain)
	if err != nil {
		return nil, err
	}
	return append(paths, after...), nil
}

// adminScripts expands %d in each path and lists the *.sieve files of
// directories, skipping what does not exist.
func adminScripts(patterns []string, domain string) ([]string, error) {
	var out []string
	for _, p := range patterns {
		p = strings.NewReplacer("%%", "%", "%d", domain).Replace(p)
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		files, err := filepath.Glob(filepath.Join(p, "*"+sievestore.Ext))
		if err != nil {
			return nil, err
		}
		sort.Strings(files)
		out = append(out, files...)
	}
	return out, nil
}

func (f *Sieve) Filter(ctx context.Context, m *Mail, d *Decision) error {
	dest := m.Destination
	paths, err := f.Paths(dest)
	if err != nil {
		return err
	}
	log := f.log().With("rcpt", dest.Address)
	var scripts []*sieve.Script
	for _, p := range paths {
		s, err := f.scripts().Load(p)
		if err != nil {
			var se *sieve.Error
			if errors.As(err, &se) {
				// Another script's mistake must not cost this one.
				log.Warn("sieve script does not compile; skipped", "script", p, "err", err)
				continue
			}
			return err
		}
		scripts = append(scripts, s)
	}
	if len(scripts) == 0 {
		return nil
	}
	msg, err := f.parse(m.Message)
	if err != nil {
		return err
	}
	env := sieve.Env{
		From: m.Envelope.From, To: f.envelopeTo(dest),
		Now: m.Envelope.Received, Location: time.Local,
		SubaddressSeparator: f.RecipientDelimiter,
	}
	if f.Verdicts != nil {
		env.Spam, env.Virus = f.Verdicts(m)
	}
	if f.MailboxExists != nil {
		env.MailboxExists = func(name string) bool { return f.MailboxExists(dest, name) }
	}
	res, err := sieve.RunAll(ctx, scripts, env, msg)
	if err != nil {
		var re *sieve.RuntimeError
		if !errors.As(err, &re) {
			return err
		}
		log.Warn("sieve script failed; keeping the message", "scripts", paths, "err", err)
	}
	return f.decide(ctx, m, res, d, log)
}

// envelopeTo is the recipient the script sees: the account's address
// with the detail it was reached by.
func (f *Sieve) envelopeTo(dest *Destination) string {
	if dest.Detail == "" {
		return dest.Address
	}
	sep := f.RecipientDelimiter
	if sep == "" {
		sep = "+"
	}
	local, domain, ok := strings.Cut(dest.Address, "@")
	if !ok {
		return dest.Address
	}
	return local + sep + dest.Detail + "@" + domain
}

// decide turns a script's result into the Decision: every keep and
// fileinto a copy (the first in Folder, the others in More), nothing kept
// means Discard.
func (f *Sieve) decide(ctx context.Context, m *Mail, res *sieve.Result, d *Decision, log *slog.Logger) error {
	var copies []Copy
	if res.ImplicitKeep {
		copies = append(copies, Copy{Folder: d.Folder, Flags: mergeFlags(d.Flags, res.KeepFlags), Create: d.Create})
	}
	for _, a := range res.Actions {
		switch a.Kind {
		case sieve.Keep:
			copies = append(copies, Copy{Folder: d.Folder, Flags: mergeFlags(d.Flags, a.Flags), Create: d.Create})
		case sieve.FileInto:
			folder := a.Mailbox
			if strings.EqualFold(folder, "INBOX") {
				folder = ""
			}
			copies = append(copies, Copy{Folder: folder, Flags: mergeFlags(d.Flags, a.Flags), Create: a.Create})
		case sieve.Redirect:
			d.Redirect = append(d.Redirect, a.Address)
		case sieve.Reject, sieve.EReject:
			d.Refuse = Perm(Rejected)
			d.Refuse.Text = strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(a.Reason, "\r", " "), "\n", " "))
		case sieve.Vacation:
			if f.Vacation == nil {
				log.Info("sieve vacation action not answered: no vacation sender configured")
				continue
			}
			rp, err := f.Vacation(ctx, m, a.Vacation)
			if err != nil {
				log.Warn("sieve vacation reply", "err", err)
				continue
			}
			if rp != nil {
				d.Replies = append(d.Replies, *rp)
			}
		}
	}
	copies = mergeCopies(copies)
	if len(copies) == 0 {
		d.Discard = true
		return nil
	}
	d.Folder, d.Flags, d.Create = copies[0].Folder, copies[0].Flags, copies[0].Create
	d.More = append(d.More, copies[1:]...)
	return nil
}

// mergeFlags adds a script's flags to those earlier filters set, less
// the keywords IMAP cannot store (Dovecot drops them too).
func mergeFlags(base, add []string) []string {
	out := append([]string(nil), base...)
	for _, f := range add {
		if !sieve.ValidFlag(f) {
			continue
		}
		dup := false
		for _, b := range out {
			if strings.EqualFold(b, f) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, f)
		}
	}
	return out
}

// mergeCopies makes one copy per folder: a keep in two scripts, or a keep
// beside the implicit keep, is one message in INBOX.
func mergeCopies(cs []Copy) []Copy {
	var out []Copy
	for _, c := range cs {
		merged := false
		for i := range out {
			if strings.EqualFold(out[i].Folder, c.Folder) {
				out[i].Flags = mergeFlags(out[i].Flags, c.Flags)
				out[i].Create = out[i].Create || c.Create
				merged = true
				break
			}
		}
		if !merged {
			out = append(out, c)
		}
	}
	return out
}
