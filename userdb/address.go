package userdb

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits from RFC 5321 4.5.3.1.
const (
	maxLocalPart = 64
	maxAddress   = 254
)

// Canonical checks an address as a login or lookup key and returns it in
// canonical form (lower case). It refuses anything that is not a plain
// local@domain: quoted local parts, source routes, more than one '@',
// control characters and NUL, overlong input. Every backend receives only
// addresses that passed here, so no filter or query ever sees raw input.
func Canonical(address string) (string, error) {
	local, domain, err := Split(address)
	if err != nil {
		return "", err
	}
	return local + "@" + domain, nil
}

// Split returns the lower-cased local part and domain of an address.
// Limits hold for the address as given and as lower-cased (lower-casing
// can lengthen UTF-8), so that a canonical address always splits again to
// itself.
func Split(address string) (local, domain string, err error) {
	if len(address) > maxAddress {
		return "", "", fmt.Errorf("%w: longer than %d octets", ErrInvalid, maxAddress)
	}
	if !utf8.ValidString(address) {
		// Lower-casing would turn each bad octet into U+FFFD.
		return "", "", fmt.Errorf("%w: not UTF-8", ErrInvalid)
	}
	at := strings.LastIndexByte(address, '@')
	if at < 0 {
		return "", "", fmt.Errorf("%w: no @ in %q", ErrInvalid, address)
	}
	raw := address[:at]
	local = strings.ToLower(raw)
	if raw == "" || len(raw) > maxLocalPart || len(local) > maxLocalPart {
		return "", "", fmt.Errorf("%w: local part empty or longer than %d octets", ErrInvalid, maxLocalPart)
	}
	if err := checkLocal(raw); err != nil {
		return "", "", err
	}
	d, err := CanonicalDomain(address[at+1:])
	if err != nil {
		return "", "", err
	}
	if len(raw)+1+len(d) > maxAddress || len(local)+1+len(d) > maxAddress {
		return "", "", fmt.Errorf("%w: longer than %d octets", ErrInvalid, maxAddress)
	}
	return local, d, nil
}

// checkLocal allows RFC 5322 dot-atom text plus UTF-8 (RFC 6531); it refuses
// the characters relay tricks and injections are made of.
func checkLocal(local string) error {
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return fmt.Errorf("%w: misplaced dot in local part", ErrInvalid)
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		switch {
		case c >= 0x80: // UTF-8 (SMTPUTF8)
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("#$&'*+-/=?^_`{|}~.", c) >= 0: // not % or !: the percent hack and bang paths
		default:
			return fmt.Errorf("%w: character %q not allowed in local part", ErrInvalid, c)
		}
	}
	return nil
}

// CanonicalDomain checks a domain name (no IP literals, no trailing dot) and
// lower-cases it. The lower-cased form is what is checked, so that the
// result is always a canonical domain itself.
func CanonicalDomain(domain string) (string, error) {
	if domain == "" || len(domain) > 253 {
		return "", fmt.Errorf("%w: domain empty or too long", ErrInvalid)
	}
	if !utf8.ValidString(domain) {
		return "", fmt.Errorf("%w: domain is not UTF-8", ErrInvalid)
	}
	domain = strings.ToLower(domain)
	if len(domain) > 253 {
		return "", fmt.Errorf("%w: domain empty or too long", ErrInvalid)
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("%w: bad domain label in %q", ErrInvalid, domain)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("%w: label may not start or end with '-'", ErrInvalid)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 0x80 || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("%w: character %q not allowed in domain", ErrInvalid, c)
			}
		}
	}
	return domain, nil
}
