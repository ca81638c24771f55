package dkim

import (
	"bufio"
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"

	msgauth "github.com/emersion/go-msgauth/dkim"
)

// DefaultHeaders are the fields signed by default: RFC 6376 5.4.1's list
// without the trace and list fields a mailing list rewrites anyway. From
// is listed twice (oversigned), so a second From added on the way breaks
// the signature instead of being shown to the reader unsigned.
var DefaultHeaders = []string{
	"From", "From", "Reply-To", "Subject", "Date", "To", "Cc",
	"Resent-Date", "Resent-From", "Resent-To", "Resent-Cc",
	"In-Reply-To", "References", "Message-ID",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding",
}

// DefaultCanonicalization is header/body canonicalization: relaxed for
// both survives the header rewrapping and trailing-space changes that
// relays do.
const DefaultCanonicalization = "relaxed/relaxed"

// MaxSelectors is how many keys may sign for one domain: the old and the
// new during a rotation.
const MaxSelectors = 2

// Key is one signing key of a domain.
type Key struct {
	Domain   string // lower case, no trailing dot
	Selector string
	Signer   crypto.Signer
}

// Config is what a Signer signs with.
type Config struct {
	// Keys sign for their domain; every key of a domain signs (at most
	// MaxSelectors), so during a rotation the message carries a signature
	// by the old and by the new selector and verifies with either record
	// published.
	Keys []Key
	// Headers are the header fields signed; a name listed twice is
	// oversigned. Default DefaultHeaders. From must be in it.
	Headers []string
	// Canonicalization is "header/body", each simple or relaxed; a single
	// word sets both. Default DefaultCanonicalization.
	Canonicalization string
}

// Signer signs messages by the domain of their From header. The zero
// value and nil sign nothing.
type Signer struct {
	keys       map[string][]Key
	headers    []string
	headerCan  msgauth.Canonicalization
	bodyCan    msgauth.Canonicalization
	maxHeaders int64
}

// New checks cfg and returns its Signer.
func New(cfg Config) (*Signer, error) {
	s := &Signer{keys: make(map[string][]Key), headers: cfg.Headers, maxHeaders: 1 << 20}
	if len(s.headers) == 0 {
		s.headers = DefaultHeaders
	}
	if !slices.ContainsFunc(s.headers, func(h string) bool { return strings.EqualFold(h, "From") }) {
		return nil, errors.New("dkim headers: From must be signed (RFC 6376 5.4)")
	}
	for _, h := range s.headers {
		if h == "" || strings.ContainsAny(h, ": \t\r\n") {
			return nil, fmt.Errorf("dkim headers: %q is not a header field name", h)
		}
	}
	var err error
	if s.headerCan, s.bodyCan, err = ParseCanonicalization(cfg.Canonicalization); err != nil {
		return nil, err
	}
	for _, k := range cfg.Keys {
		d := strings.ToLower(strings.TrimSuffix(k.Domain, "."))
		if d == "" || k.Selector == "" || k.Signer == nil {
			return nil, fmt.Errorf("dkim: key %q for %q is incomplete", k.Selector, k.Domain)
		}
		for _, o := range s.keys[d] {
			if o.Selector == k.Selector {
				return nil, fmt.Errorf("dkim: selector %q of %s given twice", k.Selector, d)
			}
		}
		if len(s.keys[d]) == MaxSelectors {
			return nil, fmt.Errorf("dkim: %s has more than %d selectors", d, MaxSelectors)
		}
		k.Domain = d
		s.keys[d] = append(s.keys[d], k)
	}
	return s, nil
}

// ParseCanonicalization reads "header/body" (or one word for both).
func ParseCanonicalization(c string) (header, body msgauth.Canonicalization, err error) {
	if c == "" {
		c = DefaultCanonicalization
	}
	h, b, ok := strings.Cut(c, "/")
	if !ok {
		b = h
	}
	for _, v := range []string{h, b} {
		if v != string(msgauth.CanonicalizationSimple) && v != string(msgauth.CanonicalizationRelaxed) {
			return "", "", fmt.Errorf("dkim canonicalization %q: %q is not simple or relaxed", c, v)
		}
	}
	return msgauth.Canonicalization(h), msgauth.Canonicalization(b), nil
}

// Domains are the domains with keys.
func (s *Signer) Domains() []string {
	if s == nil {
		return nil
	}
	var ds []string
	for d := range s.keys {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds
}

// Sign returns the DKIM-Signature fields (CRLF-ended) to put on top of
// msg, one per key of the author domain (the domain of the single
// address of its single From field). allow, when not nil, must accept
// that domain: the caller's word that the sender may speak for it. No
// key, no From, several From addresses or a domain not allowed: nothing,
// and no error; the error is for a message that could not be read or
// signed.
func (s *Signer) Sign(msg io.ReaderAt, size int64, allow func(domain string) bool) ([]byte, error) {
	if s == nil || len(s.keys) == 0 {
		return nil, nil
	}
	domain := AuthorDomain(io.NewSectionReader(msg, 0, min(size, s.maxHeaders)))
	keys := s.keys[domain]
	if len(keys) == 0 || (allow != nil && !allow(domain)) {
		return nil, nil
	}
	var out bytes.Buffer
	for _, k := range keys {
		opts := &msgauth.SignOptions{
			Domain: k.Domain, Selector: k.Selector, Signer: k.Signer,
			HeaderCanonicalization: s.headerCan, BodyCanonicalization: s.bodyCan,
			HeaderKeys: s.headers,
		}
		sg, err := msgauth.NewSigner(opts)
		if err != nil {
			return nil, fmt.Errorf("dkim sign %s/%s: %w", domain, k.Selector, err)
		}
		if _, err := io.Copy(sg, io.NewSectionReader(msg, 0, size)); err != nil {
			sg.Close()
			return nil, fmt.Errorf("dkim sign %s/%s: %w", domain, k.Selector, err)
		}
		if err := sg.Close(); err != nil {
			return nil, fmt.Errorf("dkim sign %s/%s: %w", domain, k.Selector, err)
		}
		out.WriteString(sg.Signature())
	}
	return out.Bytes(), nil
}

// AuthorDomain is the lower-case domain of the one address in the one
// From field of the message's header; "" when there is not exactly one.
func AuthorDomain(r io.Reader) string {
	h, err := textproto.NewReader(bufio.NewReader(r)).ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return ""
	}
	from := h.Values("From")
	if len(from) != 1 {
		return ""
	}
	list, err := mail.ParseAddressList(from[0])
	if err != nil || len(list) != 1 {
		return ""
	}
	_, d, ok := strings.Cut(list[0].Address, "@")
	if !ok || strings.Contains(d, "@") {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(d, "."))
}
