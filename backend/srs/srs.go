// Package srs is the Sender Rewriting Scheme: when vmaild forwards a message
// to a remote destination (an alias pointing elsewhere), the envelope sender
// is rewritten into an address in our own SRS domain, so the next hop's SPF
// check sees a sender we are allowed to use and a bounce comes back to us
// instead of to a possibly forged third party. A bounce that arrives for
// such an address is reversed to the original sender after its hash and
// age are checked.
//
// The address forms are the ones Shevek's Mail::SRS, libsrs2 and postsrsd
// write, so a forwarder can move between them and vmaild with the same
// secret and keep reversing the addresses already in flight:
//
//	SRS0=HHHH=TT=orig-domain=orig-local@srs-domain
//	SRS1=HHHH=first-forwarder==HHHH=TT=orig-domain=orig-local@srs-domain
//
// TT is the day of writing (days since 1970, modulo 1024) in two base32
// characters; HHHH is the first HashLength characters of the base64 HMAC-SHA1,
// under the first secret, of the lower-cased fields that follow it. A sender
// that is already an SRS0 address of another forwarder becomes SRS1 (the
// "guarded" scheme): the bounce goes back to that forwarder, which alone can
// check its own hash. The first "=" may be "+" or "-" instead (Separator).
//
// Reverse accepts a hash in any letter case, since some hops fold the case
// of local parts, and with "+" and "/" in place of "-" and "_": the hash is
// written in base64url as postsrsd 2.4 does, and older writers used standard
// base64. It tries every secret, so secrets can be rotated: put the new one
// first and keep the old ones until MaxAgeDays have passed.
//
// # For the delivery agent
//
// When a message is forwarded to a remote destination, the agent calls
// Rewriter.Forward(envelope sender) and queues the message with the result as
// its MAIL FROM. Forward leaves the null sender and senders in the SRS domain
// as they are; the agent should not call it for senders in our other local
// domains either (we may send as them already, and their bounces reach
// them). A Forward error means the sender could not be rewritten (a malformed
// or oversized address): forward with the original sender and log it,
// rather than lose the message. Local deliveries never need Forward; a
// message with local and remote destinations keeps its sender for the
// local copies. cmd/vmaild builds the one Rewriter from the srs.* keys
// (server.srs, nil when srs.enabled is off) and gives it to the SMTP
// listeners, the agent (LocalAgent.ForwardSender) and the queue: a DSN
// that our own queue writes for a forwarded message goes to the sender
// Reverse gives back (queue.Config.BounceTo), not through our own MX.
//
// The SMTP front end asks Owns(rcpt) at RCPT and Reverse(rcpt) for the
// address to deliver the bounce to; errors.Is tells ErrForged, ErrExpired and
// ErrMalformed apart for the reply.
package srs

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults for zero Config fields; they are postsrsd's and libsrs2's.
const (
	DefaultMaxAgeDays = 21
	DefaultHashLength = 4
	DefaultSeparator  = "="
)

// MaxAddressLength is the longest address Forward and Reverse read: an SMTP
// command line is at most 512 octets (RFC 5321 4.5.3.1.4), so nothing longer
// can have arrived in MAIL FROM or RCPT TO.
const MaxAddressLength = 512

// Errors of Reverse (and of Forward for an address it cannot read). They are
// wrapped with the precise reason; test them with errors.Is.
var (
	// ErrNotSRS: the local part does not start with SRS0 or SRS1 and a
	// separator; the address is an ordinary one.
	ErrNotSRS = errors.New("not an SRS address")
	// ErrMalformed: it starts like an SRS address but a field is missing or
	// invalid, or it is too long.
	ErrMalformed = errors.New("malformed SRS address")
	// ErrForged: the hash does not verify under any secret.
	ErrForged = errors.New("SRS address hash does not verify")
	// ErrExpired: the hash verifies but the timestamp is older than
	// MaxAgeDays (or in the future).
	ErrExpired = errors.New("SRS address expired")
)

// Config is a Rewriter's configuration.
type Config struct {
	// Domain is the SRS domain: rewritten senders are addresses in it, and
	// only addresses in it are reversed. Required.
	Domain string
	// Secrets: the first signs new addresses, every one verifies. At least
	// one, not empty.
	Secrets []string
	// Separator follows SRS0 and SRS1: "=", "+" or "-" (default "=").
	Separator string
	// MaxAgeDays is how many days a rewritten address can be reversed
	// (default 21).
	MaxAgeDays int
	// HashLength is how many base64 characters of the HMAC are written and
	// checked (default 4; 1 to 27).
	HashLength int
	// Now is the clock; nil is time.Now. For tests.
	Now func() time.Time
}

// Rewriter forwards and reverses addresses; safe for concurrent use.
type Rewriter struct {
	domain     string
	secrets    [][]byte
	sep        byte
	maxAgeDays int
	hashLen    int
	now        func() time.Time
}

// New checks c and returns its Rewriter.
func New(c Config) (*Rewriter, error) {
	r := &Rewriter{
		domain:     strings.ToLower(strings.TrimSuffix(c.Domain, ".")),
		sep:        DefaultSeparator[0],
		maxAgeDays: c.MaxAgeDays,
		hashLen:    c.HashLength,
		now:        c.Now,
	}
	if r.domain == "" || strings.ContainsAny(r.domain, "@= \t\r\n") {
		return nil, fmt.Errorf("srs: domain %q is not a domain name", c.Domain)
	}
	if len(c.Secrets) == 0 {
		return nil, errors.New("srs: no secret")
	}
	for i, s := range c.Secrets {
		if s == "" {
			return nil, fmt.Errorf("srs: secret %d is empty", i+1)
		}
		r.secrets = append(r.secrets, []byte(s))
	}
	switch c.Separator {
	case "":
	case "=", "+", "-":
		r.sep = c.Separator[0]
	default:
		return nil, fmt.Errorf("srs: separator %q is not =, + or -", c.Separator)
	}
	if r.maxAgeDays == 0 {
		r.maxAgeDays = DefaultMaxAgeDays
	}
	if r.maxAgeDays < 1 || r.maxAgeDays >= timeSlots {
		return nil, fmt.Errorf("srs: max age %d days is not between 1 and %d", r.maxAgeDays, timeSlots-1)
	}
	if r.hashLen == 0 {
		r.hashLen = DefaultHashLength
	}
	if r.hashLen < 1 || r.hashLen > maxHashLength {
		return nil, fmt.Errorf("srs: hash length %d is not between 1 and %d", r.hashLen, maxHashLength)
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r, nil
}

// Domain is the SRS domain, lower case.
func (r *Rewriter) Domain() string { return r.domain }

// Forward returns the envelope sender to use when forwarding a message from
// sender to a remote destination. The null sender ("" or "<>") and senders
// in the SRS domain are returned as they are. A sender that is not a
// mailbox, or whose rewritten form would be longer than MaxAddressLength,
// is an ErrMalformed error.
func (r *Rewriter) Forward(sender string) (string, error) {
	out, err := r.forward(sender)
	if err == nil && len(out) > MaxAddressLength {
		// Reverse would refuse it, and so would many next hops.
		return "", fmt.Errorf("srs forward: %w: sender %q would be longer than %d octets rewritten", ErrMalformed, sender, MaxAddressLength)
	}
	return out, err
}

func (r *Rewriter) forward(sender string) (string, error) {
	if sender == "" || sender == "<>" {
		return sender, nil
	}
	if len(sender) > MaxAddressLength {
		return "", fmt.Errorf("srs forward: %w: sender longer than %d octets", ErrMalformed, MaxAddressLength)
	}
	at := strings.LastIndexByte(sender, '@')
	if at <= 0 || at == len(sender)-1 {
		return "", fmt.Errorf("srs forward: %w: sender %q has no local part or domain", ErrMalformed, sender)
	}
	user, host := sender[:at], sender[at+1:]
	if strings.EqualFold(strings.TrimSuffix(host, "."), r.domain) {
		return sender, nil
	}
	if !mailbox(user, host) {
		// Reverse would read such a domain differently, or refuse it.
		return "", fmt.Errorf("srs forward: %w: sender %q is not a mailbox", ErrMalformed, sender)
	}
	if tag, ok := srsTag(user); ok {
		rest := user[5:]
		switch tag {
		case '1':
			// Keep the first forwarder and its SRS0 part; only the hash
			// is ours, so the bounce goes straight back to that forwarder.
			if _, first, srs0, err := parseSRS1(rest); err == nil {
				return r.srs1(first, srs0), nil
			}
		case '0':
			// SRS0 at another forwarder: wrap it, keeping its separator.
			return r.srs1(host, user[4:]), nil
		}
		// An unreadable SRS1 is treated as an ordinary local part.
	}
	stamp := timestamp(r.now())
	hash := r.hash(r.secrets[0], stamp, host, user)
	var b strings.Builder
	b.Grow(len(sender) + len(r.domain) + r.hashLen + 12)
	b.WriteString("SRS0")
	b.WriteByte(r.sep)
	b.WriteString(hash)
	b.WriteByte('=')
	b.WriteString(stamp)
	b.WriteByte('=')
	b.WriteString(host)
	b.WriteByte('=')
	b.WriteString(user)
	b.WriteByte('@')
	b.WriteString(r.domain)
	return b.String(), nil
}

func (r *Rewriter) srs1(first, srs0 string) string {
	return "SRS1" + string(r.sep) + r.hash(r.secrets[0], first, srs0) + "=" + first + "=" + srs0 + "@" + r.domain
}

// Owns reports whether addr is an SRS address (SRS0 or SRS1 local part)
// in the SRS domain: one that Reverse must either turn back into the
// original sender or refuse.
func (r *Rewriter) Owns(addr string) bool {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	_, ok := srsTag(addr[:at])
	return ok && strings.EqualFold(strings.TrimSuffix(addr[at+1:], "."), r.domain)
}

// Reverse returns the address a bounce to the SRS address addr goes to:
// the original sender for SRS0, the first forwarder's SRS0 address for
// SRS1. The domain of addr is not looked at (see Owns). Errors wrap
// ErrNotSRS, ErrMalformed, ErrForged or ErrExpired.
func (r *Rewriter) Reverse(addr string) (string, error) {
	if len(addr) > MaxAddressLength {
		return "", fmt.Errorf("%w: longer than %d octets", ErrMalformed, MaxAddressLength)
	}
	local := addr
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		local = addr[:at]
	}
	tag, ok := srsTag(local)
	if !ok {
		return "", ErrNotSRS
	}
	rest := local[5:]
	if tag == '1' {
		hash, first, srs0, err := parseSRS1(rest)
		if err != nil {
			return "", err
		}
		if err := r.verify(hash, first, srs0); err != nil {
			return "", err
		}
		return checkResult("SRS0"+srs0, first)
	}
	parts := strings.SplitN(rest, "=", 4)
	if len(parts) != 4 || parts[0] == "" || parts[1] == "" || parts[2] == "" || parts[3] == "" {
		return "", fmt.Errorf("%w: SRS0 needs hash=timestamp=domain=local-part", ErrMalformed)
	}
	hash, stamp, host, user := parts[0], parts[1], parts[2], parts[3]
	then, ok := parseTimestamp(stamp)
	if !ok {
		return "", fmt.Errorf("%w: timestamp %q is not two base32 characters", ErrMalformed, stamp)
	}
	// The hash first: an old timestamp on a forged address is a forgery,
	// and only a genuine one is reported as expired.
	if err := r.verify(hash, stamp, host, user); err != nil {
		return "", err
	}
	if age := daysSince(then, r.now()); age > r.maxAgeDays {
		return "", fmt.Errorf("%w: written %d days ago, the limit is %d", ErrExpired, age, r.maxAgeDays)
	}
	return checkResult(user, host)
}

// checkResult refuses a reversed address that could not have been a
// sender: a verified hash only proves we wrote it, and an old secret or a
// buggy writer must still not make us relay to something odd.
func checkResult(user, host string) (string, error) {
	if !mailbox(user, host) {
		return "", fmt.Errorf("%w: the original address %q@%q is not a mailbox", ErrMalformed, user, host)
	}
	return user + "@" + host, nil
}

// mailbox is the little Forward and Reverse need of an address: both parts
// there, no spaces, controls or second "@", and a domain that is neither an
// address literal nor holding the "=" that separates the SRS fields.
func mailbox(user, host string) bool {
	bad := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c <= ' ' || c == 0x7f || c == '@' {
				return true
			}
		}
		return false
	}
	return user != "" && host != "" && !bad(user) && !bad(host) && !strings.ContainsAny(host, "=[]")
}

// srsTag reads "SRS0" or "SRS1" (any case) and a separator at the start of
// a local part.
func srsTag(local string) (byte, bool) {
	if len(local) < 5 || !strings.EqualFold(local[:3], "SRS") {
		return 0, false
	}
	if (local[3] != '0' && local[3] != '1') || !strings.ContainsRune("=+-", rune(local[4])) {
		return 0, false
	}
	return local[3], true
}

// parseSRS1 reads what follows "SRS1=": the hash, the first forwarder's
// domain and its SRS0 local part without "SRS0" (so starting with that
// forwarder's separator).
func parseSRS1(rest string) (hash, first, srs0 string, err error) {
	hash, first, srs0, ok := split3(rest)
	switch {
	case !ok:
		return "", "", "", fmt.Errorf("%w: SRS1 needs hash=forwarder=SRS0-part", ErrMalformed)
	case srs0[0] != '=' && srs0[0] != '+' && srs0[0] != '-':
		return "", "", "", fmt.Errorf("%w: SRS1 part after the forwarder does not start with a separator", ErrMalformed)
	case !mailbox("SRS0"+srs0, first):
		return "", "", "", fmt.Errorf("%w: SRS1 forwarder %q or its address is not a mailbox", ErrMalformed, first)
	}
	return hash, first, srs0, nil
}

// split3 cuts a=b=rest into its three non-empty fields; rest may hold "=".
func split3(s string) (a, b, rest string, ok bool) {
	a, s, ok1 := strings.Cut(s, "=")
	b, rest, ok2 := strings.Cut(s, "=")
	return a, b, rest, ok1 && ok2 && a != "" && b != "" && rest != ""
}

// The timestamp is a day count in two base32 characters, so it wraps every
// 1024 days; the age is taken modulo that.
const (
	timeAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	timeSlots    = 1024
	secondsADay  = 24 * 60 * 60
)

func dayOf(t time.Time) int64 {
	d := t.Unix() / secondsADay
	if t.Unix() < 0 && t.Unix()%secondsADay != 0 {
		d-- // floor, so days before 1970 are still whole days
	}
	return d
}

func timestamp(t time.Time) string {
	d := dayOf(t) & (timeSlots - 1)
	return string([]byte{timeAlphabet[d>>5], timeAlphabet[d&31]})
}

func parseTimestamp(s string) (int, bool) {
	if len(s) != 2 {
		return 0, false
	}
	v := 0
	for i := 0; i < 2; i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		n := strings.IndexByte(timeAlphabet, c)
		if n < 0 {
			return 0, false
		}
		v = v<<5 | n
	}
	return v, true
}

// daysSince is how many days before now the stamp then was written,
// modulo the 1024-day cycle; a stamp ahead of today reads as almost 1024
// days old, hence expired, as libsrs2 and Mail::SRS have it.
func daysSince(then int, now time.Time) int {
	today := int(dayOf(now) & (timeSlots - 1))
	if today < then {
		today += timeSlots
	}
	return today - then
}

// maxHashLength is the base64 length of a SHA-1 HMAC without padding.
const maxHashLength = 27

// hash is the HMAC-SHA1 of the lower-cased fields, concatenated, in
// base64url, cut to the hash length. Lower-casing is ASCII only, as the C
// and Perl implementations do it byte by byte.
func (r *Rewriter) hash(secret []byte, fields ...string) string {
	var sum [maxHashLength + 1]byte
	base64.RawURLEncoding.Encode(sum[:], r.mac(secret, fields))
	return string(sum[:r.hashLen])
}

func (r *Rewriter) mac(secret []byte, fields []string) []byte {
	m := hmac.New(sha1.New, secret)
	var buf [256]byte
	for _, f := range fields {
		b := buf[:0]
		for i := 0; i < len(f); i++ {
			c := f[i]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			b = append(b, c)
		}
		m.Write(b)
	}
	return m.Sum(nil)
}

// verify checks hash against every secret: the first HashLength characters
// must match, in any case and in either base64 alphabet. A shorter hash
// is malformed; characters past the hash length are not looked at, as in
// postsrsd.
func (r *Rewriter) verify(hash string, fields ...string) error {
	if len(hash) < r.hashLen {
		return fmt.Errorf("%w: hash %q is shorter than %d characters", ErrMalformed, hash, r.hashLen)
	}
	var given [maxHashLength]byte
	for i := 0; i < r.hashLen; i++ {
		c, ok := foldHashChar(hash[i])
		if !ok {
			return fmt.Errorf("%w: hash %q has a character outside base64", ErrMalformed, hash)
		}
		given[i] = c
	}
	var want [maxHashLength + 1]byte
	found := 0
	for _, s := range r.secrets {
		base64.RawURLEncoding.Encode(want[:], r.mac(s, fields))
		for i := 0; i < r.hashLen; i++ {
			want[i], _ = foldHashChar(want[i])
		}
		// Every secret is tried, so the time taken does not tell which
		// one matched.
		found |= subtle.ConstantTimeCompare(given[:r.hashLen], want[:r.hashLen])
	}
	if found == 0 {
		return fmt.Errorf("%w (forged, or written under a secret no longer configured)", ErrForged)
	}
	return nil
}

// foldHashChar maps a base64 or base64url character to one canonical form:
// lower case, "-" for "+" and "_" for "/".
func foldHashChar(c byte) (byte, bool) {
	switch {
	case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		return c, true
	case c >= 'A' && c <= 'Z':
		return c + 'a' - 'A', true
	case c == '+':
		return '-', true
	case c == '/':
		return '_', true
	}
	return 0, false
}
