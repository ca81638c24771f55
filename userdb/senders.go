package userdb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// MaySendAs is the one place that decides which sender addresses an
// authenticated account may use, for every protocol. Granted are:
//
//   - the account's own address and its plus-addressed forms
//     (alice+lists@example.com for alice@example.com);
//   - the same local part in an active alias domain of the account's
//     domain (alice@example.net when example.net is an alias of
//     example.com);
//   - an address, or every address of a domain ("@domain"), that the
//     account's own entry lists (Account.SenderAddresses: LDAP's
//     sender_address attribute);
//   - an address, or "@domain", whose row in the sender map names the
//     account as a login (Postfix's smtpd_sender_login_maps).
//
// Grants are looked up for the address as given, then without its plus
// tag, then for its domain, the order Postfix's lookup tables use.
//
// Nothing else grants: where mail for an address is delivered says nothing
// about who may send as it, so neither the owner of a catch-all nor the
// members of an alias may use its address unless a grant says so.
//
// account is an authenticated account's address, as Authenticate returned
// it. A malformed address is (false, nil); an error is the directory
// failing, classified as the backend classified it (ErrUnavailable: try
// later).
func (u *Users) MaySendAs(ctx context.Context, account, address string) (bool, error) {
	ctx, cancel := u.bound(ctx)
	defer cancel()
	acct, err := Canonical(account)
	if err != nil {
		return false, nil
	}
	local, domain, err := Split(address)
	if err != nil {
		return false, nil
	}
	base := local
	if b, _, ok := u.splitDetail(local); ok {
		base = b
	}
	own, err := u.ownAddress(ctx, acct, local, base, domain)
	if own || err != nil {
		return own, err
	}
	keys := []string{local + "@" + domain}
	if base != local {
		keys = append(keys, base+"@"+domain)
	}
	keys = append(keys, "@"+domain)
	return u.granted(ctx, acct, keys)
}

// ownAddress reports whether local (or base, local without its plus tag)
// at domain is the account's address, in its own domain or in one of its
// alias domains.
func (u *Users) ownAddress(ctx context.Context, acct, local, base, domain string) (bool, error) {
	acctLocal, acctDomain, err := Split(acct)
	if err != nil || (local != acctLocal && base != acctLocal) {
		return false, err
	}
	// An alias domain may point at another alias domain; Resolve follows
	// such chains, so this does too, as far.
	for depth := 0; domain != acctDomain; depth++ {
		if depth >= MaxAliasDepth {
			return false, nil
		}
		d, err := u.Domains.LookupDomain(ctx, domain)
		switch {
		case errors.Is(err, ErrNotFound):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("may %s send as %s@%s: domain: %w", acct, local, domain, err)
		case !d.Active || d.AliasFor == "":
			return false, nil
		}
		domain = d.AliasFor
	}
	return true, nil
}

// granted reports whether the account's entry or the sender map grants it
// one of keys.
func (u *Users) granted(ctx context.Context, acct string, keys []string) (bool, error) {
	if u.Accounts != nil {
		a, err := u.Accounts.LookupAccount(ctx, acct)
		switch {
		case errors.Is(err, ErrNotFound):
			// No entry, so no grants on it; the map may still have some.
		case err != nil:
			return false, fmt.Errorf("may %s send as %s: account: %w", acct, keys[0], err)
		default:
			for _, s := range a.SenderAddresses {
				if k, _, err := MapKey(strings.TrimSpace(s)); err == nil && slices.Contains(keys, k) {
					return true, nil
				}
			}
		}
	}
	if u.Senders == nil {
		return false, nil
	}
	for _, k := range keys {
		logins, err := u.Senders.SenderLogins(ctx, k)
		if err != nil {
			return false, fmt.Errorf("may %s send as %s: sender map: %w", acct, keys[0], err)
		}
		for _, l := range logins {
			if c, err := Canonical(strings.TrimSpace(l)); err == nil && c == acct {
				return true, nil
			}
		}
	}
	return false, nil
}

// MapKey checks a key of a lookup table keyed by address, the alias
// sources and the sender map: an address, or "@domain" for every address of
// a domain. It returns the key in canonical form and its domain.
func MapKey(s string) (key, domain string, err error) {
	if rest, ok := strings.CutPrefix(s, "@"); ok {
		domain, err = CanonicalDomain(rest)
		return "@" + domain, domain, err
	}
	local, domain, err := Split(s)
	return local + "@" + domain, domain, err
}

// SenderLogins lists the accounts that may send as address, for lookup
// tables asked the other way round (Postfix's smtpd_sender_login_maps):
// the address's owner (the account itself, the account of its form
// without a plus tag, the same local part through alias domains) and the
// logins the sender map grants it, its plus-less form or its domain. Each
// candidate is confirmed by MaySendAs, the one decision. Grants kept on
// account entries (Account.SenderAddresses) cannot be found from the
// address without searching every entry, so they are not listed. A
// malformed address lists nobody.
func (u *Users) SenderLogins(ctx context.Context, address string) ([]string, error) {
	ctx, cancel := u.bound(ctx)
	defer cancel()
	local, domain, err := Split(address)
	if err != nil {
		return nil, nil
	}
	base := local
	if b, _, ok := u.splitDetail(local); ok {
		base = b
	}
	var candidates []string
	owners, err := u.owners(ctx, local, base, domain)
	if err != nil {
		return nil, err
	}
	candidates = append(candidates, owners...)
	if u.Senders != nil {
		keys := []string{local + "@" + domain}
		if base != local {
			keys = append(keys, base+"@"+domain)
		}
		for _, k := range append(keys, "@"+domain) {
			logins, err := u.Senders.SenderLogins(ctx, k)
			if err != nil {
				return nil, fmt.Errorf("sender logins of %s: sender map: %w", address, err)
			}
			for _, l := range logins {
				if c, err := Canonical(strings.TrimSpace(l)); err == nil {
					candidates = append(candidates, c)
				}
			}
		}
	}
	var out []string
	for _, c := range candidates {
		if slices.Contains(out, c) {
			continue
		}
		ok, err := u.MaySendAs(ctx, c, local+"@"+domain)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// owners are the accounts local@domain (or base@domain, its plus-less
// form) names, following alias domains as Resolve does.
func (u *Users) owners(ctx context.Context, local, base, domain string) ([]string, error) {
	for depth := 0; ; depth++ {
		if depth >= MaxAliasDepth {
			return nil, nil
		}
		d, err := u.Domains.LookupDomain(ctx, domain)
		switch {
		case errors.Is(err, ErrNotFound):
			// Accounts stand on their own (see checkActive).
		case err != nil:
			return nil, fmt.Errorf("sender logins of %s@%s: domain: %w", local, domain, err)
		case !d.Active:
			return nil, nil
		case d.AliasFor != "":
			domain = d.AliasFor
			continue
		}
		break
	}
	var out []string
	for _, l := range slices.Compact([]string{local, base}) {
		a, err := u.Accounts.LookupAccount(ctx, l+"@"+domain)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("sender logins of %s@%s: account: %w", l, domain, err)
		default:
			out = append(out, a.Address)
		}
	}
	return out, nil
}
