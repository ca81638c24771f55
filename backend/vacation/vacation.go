// Package vacation answers Sieve's vacation action (RFC 5230) for the
// delivery filter (delivery.Sieve.Vacation): it decides whether a reply is
// due under RFC 5230 and RFC 3834 — never to the null sender, mailer
// daemons or list software, lists, bulk, auto-submitted or spam mail, mail
// not addressed to the user, and once per sender and handle per period,
// remembered in a file in the mail home across restarts — and writes the
// reply, which the delivery agent queues from the null sender and signs
// in the owner's name.
package vacation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/charset"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/sieve"
	"github.com/vmaild/vmaild/backend/sievestore"
)

// Pigeonhole's sieve_vacation_min_period default; its max_period default
// is 0, no limit.
const DefaultMinPeriod = 24 * time.Hour

// Responder writes vacation replies. Its zero value with Maildir set
// works: Pigeonhole's periods, From only the recipient's own address.
type Responder struct {
	// Maildir is the Maildir of an account (store.Store.MaildirPath); the
	// de-duplication file lives in its mail home.
	Maildir func(address, override string) (string, error)
	// MaySendAs says whether the account may send as address
	// (userdb.Users.MaySendAs): a :from the account may not use is
	// replaced by the recipient's address, since the reply is signed in
	// the account's name. Nil: only the recipient's own address.
	MaySendAs func(ctx context.Context, account, address string) (bool, error)
	// MinPeriod and MaxPeriod bound :days and :seconds
	// (sieve_vacation_min_period, sieve_vacation_max_period): a negative
	// MinPeriod is no minimum (a reply to every message), 0 is
	// DefaultMinPeriod; MaxPeriod 0 is no maximum.
	MinPeriod, MaxPeriod time.Duration
	// Hostname is the right side of the replies' Message-ID.
	Hostname string
	// Dupes remembers the replies sent; nil: one of its own.
	Dupes *Dupes
	// Now is the clock; nil: time.Now.
	Now    func() time.Time
	Logger *slog.Logger

	dupes Dupes
}

func (r *Responder) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Responder) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

func (r *Responder) store() *Dupes {
	if r.Dupes != nil {
		return r.Dupes
	}
	return &r.dupes
}

// Period is how long after a reply to a sender the next one is not due:
// what the script asked for, within MinPeriod and MaxPeriod.
func (r *Responder) Period(p *sieve.VacationParams) time.Duration {
	period := p.Period
	if p.HasPeriod {
		period = p.Requested
	}
	lo := r.MinPeriod
	if lo == 0 {
		lo = DefaultMinPeriod
	}
	period = max(period, lo, 0)
	if r.MaxPeriod > 0 {
		period = min(period, r.MaxPeriod)
	}
	return period
}

// Skip is why no reply is due, "" when one is, before de-duplication.
func (r *Responder) Skip(ctx context.Context, m *delivery.Mail, p *sieve.VacationParams) string {
	sender := strings.ToLower(m.Envelope.From)
	if sender == "" {
		return "null sender"
	}
	if systemSender(sender) {
		return "sender is a mailer daemon or list software"
	}
	own := r.ownAddresses(m, p)
	for _, a := range own {
		if a == sender {
			return "sender is the recipient"
		}
	}
	if h := autoHeader(m.Header); h != "" {
		return "message has " + h
	}
	if spam(m.Verdict()) {
		return "message is spam"
	}
	if !addressedTo(m.Header, own) {
		return "recipient not in To, Cc or Bcc"
	}
	return ""
}

// ownAddresses are the addresses the message may name the user by, lower
// case: the account, the address it was reached by, and :addresses.
func (r *Responder) ownAddresses(m *delivery.Mail, p *sieve.VacationParams) []string {
	addrs := []string{strings.ToLower(m.Destination.Address)}
	if m.Recipient != nil {
		addrs = append(addrs, strings.ToLower(m.Recipient.Address))
		if m.Recipient.ORCPT != "" {
			addrs = append(addrs, strings.ToLower(m.Recipient.ORCPT))
		}
	}
	for _, a := range p.Addresses {
		if pa, err := mail.ParseAddress(a); err == nil {
			a = pa.Address
		}
		addrs = append(addrs, strings.ToLower(strings.TrimSpace(a)))
	}
	return addrs
}

// Reply is delivery.Sieve's Vacation hook: the reply to send, or nil when
// none is due.
func (r *Responder) Reply(ctx context.Context, m *delivery.Mail, p *sieve.VacationParams) (*delivery.Reply, error) {
	log := r.log().With("rcpt", m.Destination.Address, "sender", m.Envelope.From)
	if why := r.Skip(ctx, m, p); why != "" {
		log.Info("vacation: no reply", "reason", why)
		return nil, nil
	}
	now := r.now()
	period := r.Period(p)
	var home string
	key := strings.ToLower(m.Destination.Address) + "\x00" + strings.ToLower(m.Envelope.From) + "\x00" + p.Handle
	if period > 0 {
		maildir, err := r.Maildir(m.Destination.Address, m.Destination.Maildir)
		if err != nil {
			return nil, fmt.Errorf("vacation: mail home of %s: %w", m.Destination.Address, err)
		}
		home = sievestore.HomeOf(maildir)
		seen, err := r.store().Seen(home, key, now)
		if err != nil {
			return nil, err
		}
		if seen {
			log.Info("vacation: no reply", "reason", "already answered within the period", "period", period)
			return nil, nil
		}
	}
	msg, err := r.compose(ctx, m, p, now)
	if err != nil {
		return nil, err
	}
	rp := &delivery.Reply{To: m.Envelope.From, Message: msg}
	if period > 0 {
		// Remembered once queued, as Pigeonhole marks a reply once
		// sent: a delivery that fails before answers on its retry.
		rp.Queued = func() {
			if err := r.store().Record(home, key, now, period); err != nil {
				log.Warn("vacation: reply not remembered", "err", err)
			}
		}
	}
	log.Info("vacation: reply due", "period", period)
	return rp, nil
}

// from is the reply's From field: :from when the account may send as it,
// else the recipient's address.
func (r *Responder) from(ctx context.Context, m *delivery.Mail, p *sieve.VacationParams) string {
	account := m.Destination.Address
	if p.From == "" {
		return account
	}
	pa, err := mail.ParseAddress(p.From)
	if err != nil {
		return account
	}
	if strings.EqualFold(pa.Address, account) {
		return pa.String()
	}
	if r.MaySendAs != nil {
		if ok, err := r.MaySendAs(ctx, account, pa.Address); err == nil && ok {
			return pa.String()
		}
	}
	r.log().Info("vacation: :from is not the account's; replying from the recipient", "rcpt", account, "from", p.From)
	return account
}

// compose writes the reply (RFC 5230 section 5, RFC 3834 section 3).
func (r *Responder) compose(ctx context.Context, m *delivery.Mail, p *sieve.VacationParams, now time.Time) ([]byte, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("vacation: message id: %w", err)
	}
	host := r.Hostname
	if host == "" {
		host = "localhost"
	}
	subject := p.Subject
	if subject == "" {
		subject = "Auto: " + decodeHeader(m.Header.Get("Subject"))
	}
	var b strings.Builder
	field := func(name, value string) {
		b.WriteString(name + ": " + value + "\r\n")
	}
	field("From", r.from(ctx, m, p))
	field("To", "<"+m.Envelope.From+">")
	field("Subject", fold(len("Subject: "), mime.QEncoding.Encode("utf-8", truncate(oneLine(subject), maxSubject))))
	field("Date", now.Format(time.RFC1123Z))
	field("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+host+">")
	if orig := msgID(m.Header.Get("Message-Id")); orig != "" {
		field("In-Reply-To", orig)
		var refs []string
		for _, f := range strings.Fields(m.Header.Get("References")) {
			if id := msgID(f); id != "" {
				refs = append(refs, id)
			}
		}
		if len(refs) > maxReferences {
			// The first and the latest, as RFC 5322 section 3.6.4
			// suggests when trimming.
			refs = append(refs[:1], refs[len(refs)-maxReferences+1:]...)
		}
		field("References", fold(len("References: "), strings.Join(append(refs, orig), " ")))
	}
	field("Auto-Submitted", "auto-replied (vacation)")
	field("MIME-Version", "1.0")
	reason := crlf(p.Reason)
	if p.Mime {
		// The reason is a MIME entity: its header continues ours.
		b.WriteString(reason)
	} else {
		field("Content-Type", "text/plain; charset=utf-8")
		cte := "7bit"
		for i := 0; i < len(reason); i++ {
			if reason[i] >= 0x80 {
				cte = "8bit"
				break
			}
		}
		field("Content-Transfer-Encoding", cte)
		b.WriteString("\r\n" + reason)
	}
	if !strings.HasSuffix(b.String(), "\r\n") {
		b.WriteString("\r\n")
	}
	return []byte(b.String()), nil
}

// Bounds on what of the original goes into the reply's header.
const (
	maxSubject    = 200 // characters
	maxReferences = 20
	maxMsgID      = 250 // octets
)

// msgID is the first <id> in s, "" when there is none (or it is absurdly
// long): a garbled Message-ID is left out rather than copied.
func msgID(s string) string {
	i := strings.IndexByte(s, '<')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(s[i:], '>')
	if j < 2 || j > maxMsgID || strings.ContainsAny(s[i:i+j], " \t") {
		return ""
	}
	return s[i : i+j+1]
}

// truncate cuts s to n characters.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// fold breaks a header value at spaces so that no line, the field name's
// used octets included, passes 78 octets when the words allow it.
func fold(used int, v string) string {
	var b strings.Builder
	n := used
	for i, w := range strings.Split(v, " ") {
		if i > 0 {
			if n+1+len(w) > 78 {
				b.WriteString("\r\n")
				n = 0
			}
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

// decodeHeader decodes encoded words (RFC 2047) in any charset go-message
// knows; what does not decode stays as it was.
func decodeHeader(s string) string {
	d := mime.WordDecoder{CharsetReader: func(cs string, in io.Reader) (io.Reader, error) {
		return charset.Reader(cs, in)
	}}
	out, err := d.DecodeHeader(s)
	if err != nil {
		return s
	}
	return out
}

// oneLine unfolds a header value and drops control characters, so that a
// subject cannot add header fields.
func oneLine(s string) string {
	s = strings.Map(func(c rune) rune {
		if c == '\r' || c == '\n' || c == '\t' {
			return ' '
		}
		if c < 0x20 || c == 0x7f {
			return -1
		}
		return c
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// crlf gives text CRLF line ends.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}
