package userdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MaxAliasDepth bounds alias expansion; deeper chains are treated as loops,
// as Postfix does with virtual_alias_recursion_limit.
const MaxAliasDepth = 20

// MaxDestinations bounds the fan-out of one address (Postfix's
// virtual_alias_expansion_limit), so a hostile alias table cannot make one
// RCPT cost unbounded work.
const MaxDestinations = 1000

// Users composes an account source and a domain source into the Directory
// every front end uses. Which backend serves which kind of lookup is the
// configuration's choice: LDAP accounts with SQL domains, or SQLite for
// everything.
type Users struct {
	Accounts AccountSource
	Domains  DomainSource
	// Quotas keeps usage; nil when quotas are not accounted.
	Quotas QuotaStore
	// Senders is the explicit sender-login map; nil grants nothing beyond
	// what MaySendAs allows by itself.
	Senders SenderMap
	// Limits serves the sending limits kept in SQL; nil: only those on
	// the account entries (LDAP), if any.
	Limits SendLimitSource
	// DefaultDomain lets users log in with a bare local part.
	DefaultDomain string
	// RecipientDelimiter separates a plus-address tag ("+"); empty turns
	// plus-addressing off.
	RecipientDelimiter string
}

var (
	_ Directory = (*Users)(nil)
	_ Bounded   = (*Users)(nil)
)

// Timeout bounds one call (a login, an address resolution) as a whole,
// however many lookups it makes: the longest timeout its sources declare
// (Bounded), or 0 (no bound of its own) when neither does. A resolution
// through a chain of aliases against a slow directory thus ends as "try
// later" in time, instead of adding up one timeout per lookup.
func (u *Users) Timeout() time.Duration {
	return max(sourceTimeout(u.Accounts), sourceTimeout(u.Domains))
}

// bound applies Timeout to one call.
func (u *Users) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return Bound(ctx, u)
}

// Bound gives a step that makes several directory calls (a RCPT: domain,
// aliases, account, quota) one deadline, dir's Timeout from now, so that
// the step as a whole answers within the directory timeout instead of
// adding one timeout per call. A dir that is not Bounded adds none; an
// earlier deadline of ctx stays.
func Bound(ctx context.Context, dir any) (context.Context, context.CancelFunc) {
	if d := sourceTimeout(dir); d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return ctx, func() {}
}

// LoginAddress turns what a client typed into the canonical address it
// logs in as; the login service keys its throttling by it, so that
// "Alice", "alice@Example.ORG" and "alice@example.org" share one record.
func (u *Users) LoginAddress(login string) (string, error) {
	if !strings.Contains(login, "@") && u.DefaultDomain != "" {
		login += "@" + u.DefaultDomain
	}
	return Canonical(login)
}

// Authenticate checks a login and password. Whatever the reason a login is
// refused (unknown user, wrong password, malformed name), the caller sees
// ErrBadCredentials or ErrDisabled; only ErrUnavailable means "try later".
func (u *Users) Authenticate(ctx context.Context, login, password string) (*Account, error) {
	addr, err := u.LoginAddress(login)
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w: %w", ErrBadCredentials, err)
	}
	if password == "" || strings.IndexByte(password, 0) >= 0 {
		return nil, fmt.Errorf("authenticate %s: %w", addr, ErrBadCredentials)
	}
	ctx, cancel := u.bound(ctx)
	defer cancel()
	acct, err := u.Accounts.Authenticate(ctx, addr, password)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, fmt.Errorf("authenticate %s: %w: no such account", addr, ErrBadCredentials)
	case err != nil:
		return nil, fmt.Errorf("authenticate %s: %w", addr, err)
	}
	if err := u.checkActive(ctx, acct); err != nil {
		return nil, err
	}
	return acct, nil
}

// checkActive refuses disabled accounts and accounts of disabled domains.
func (u *Users) checkActive(ctx context.Context, acct *Account) error {
	if !acct.Active {
		return fmt.Errorf("account %s: %w", acct.Address, ErrDisabled)
	}
	_, domain, err := Split(acct.Address)
	if err != nil {
		return err
	}
	d, err := u.Domains.LookupDomain(ctx, domain)
	switch {
	case errors.Is(err, ErrNotFound):
		// An account whose domain is not configured is an admin's mistake;
		// refusing would lock users out of a working LDAP directory whose
		// domains table is empty, so accounts stand on their own.
		return nil
	case err != nil:
		return fmt.Errorf("domain %s: %w", domain, err)
	case !d.Active:
		return fmt.Errorf("domain %s: %w", domain, ErrDisabled)
	}
	return nil
}

// Account looks up an active account by address.
func (u *Users) Account(ctx context.Context, address string) (*Account, error) {
	addr, err := Canonical(address)
	if err != nil {
		return nil, err
	}
	ctx, cancel := u.bound(ctx)
	defer cancel()
	acct, err := u.Accounts.LookupAccount(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("account %s: %w", addr, err)
	}
	return acct, nil
}

// IsLocalDomain reports whether mail for domain is ours to deliver (an
// active domain or an alias domain).
func (u *Users) IsLocalDomain(ctx context.Context, domain string) (bool, error) {
	name, err := CanonicalDomain(domain)
	if err != nil {
		return false, nil
	}
	ctx, cancel := u.bound(ctx)
	defer cancel()
	d, err := u.Domains.LookupDomain(ctx, name)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("domain %s: %w", name, err)
	}
	return d.Active, nil
}

// QuotaLimit is the account's own limit, or its domain's default.
func (u *Users) QuotaLimit(ctx context.Context, address string) (Limit, error) {
	ctx, cancel := u.bound(ctx)
	defer cancel()
	acct, err := u.Account(ctx, address)
	if err != nil {
		return Limit{}, err
	}
	if acct.Quota != nil {
		return *acct.Quota, nil
	}
	_, domain, _ := Split(acct.Address)
	d, err := u.Domains.LookupDomain(ctx, domain)
	switch {
	case errors.Is(err, ErrNotFound):
		return Limit{}, nil
	case err != nil:
		return Limit{}, fmt.Errorf("quota of %s: %w", acct.Address, err)
	}
	return d.Quota, nil
}

// Resolve expands an address to its final destinations, in the order
// Postfix's virtual maps use: an exact alias, then a mailbox, then the
// address without its plus tag, then the domain's catch-all. A remote
// address is its own destination. An alias that names itself among its
// destinations delivers to its own mailbox too ("keep a copy").
func (u *Users) Resolve(ctx context.Context, address string) ([]Destination, error) {
	addr, err := Canonical(address)
	if err != nil {
		return nil, err
	}
	ctx, cancel := u.bound(ctx)
	defer cancel()
	r := resolver{u: u, seen: map[string]bool{}}
	if err := r.expand(ctx, addr, "", nil); err != nil {
		return nil, err
	}
	if len(r.out) == 0 {
		return nil, fmt.Errorf("resolve %s: %w", addr, ErrNotFound)
	}
	return r.out, nil
}

type resolver struct {
	u    *Users
	out  []Destination
	seen map[string]bool // destinations already emitted
}

func (r *resolver) emit(d Destination) error {
	key := d.Address + "\x00" + d.Detail
	if r.seen[key] {
		return nil
	}
	if len(r.out) >= MaxDestinations {
		return fmt.Errorf("resolve: more than %d destinations: %w", MaxDestinations, ErrAliasLoop)
	}
	r.seen[key] = true
	r.out = append(r.out, d)
	return nil
}

// expand resolves one address; path is the chain of aliases that led here,
// used to detect loops and to report them.
func (r *resolver) expand(ctx context.Context, addr, detail string, path []string) error {
	for _, p := range path {
		if p == addr {
			return fmt.Errorf("resolve: %w: %s", ErrAliasLoop, strings.Join(append(path, addr), " → "))
		}
	}
	if len(path) >= MaxAliasDepth {
		return fmt.Errorf("resolve: %w: deeper than %d: %s", ErrAliasLoop, MaxAliasDepth, strings.Join(path, " → "))
	}
	local, domain, err := Split(addr)
	if err != nil {
		return err
	}
	d, err := r.u.Domains.LookupDomain(ctx, domain)
	switch {
	case errors.Is(err, ErrNotFound):
		return r.emit(Destination{Address: addr, Detail: detail})
	case err != nil:
		return fmt.Errorf("resolve %s: %w", addr, err)
	case !d.Active:
		return fmt.Errorf("resolve %s: domain %w", addr, ErrDisabled)
	case d.AliasFor != "":
		return r.expand(ctx, local+"@"+d.AliasFor, detail, append(path, addr))
	}

	found, err := r.expandLocal(ctx, addr, detail, path)
	if found || err != nil {
		return err
	}
	if base, tag, ok := r.u.splitDetail(local); ok {
		found, err = r.expandLocal(ctx, base+"@"+domain, tag, path)
		if found || err != nil {
			return err
		}
	}
	// The catch-all: an "@domain" alias row, or the domain's catchall.
	dests, err := r.u.Domains.LookupAliases(ctx, "@"+domain)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", addr, err)
	}
	if d.CatchAll != "" {
		dests = append(dests, d.CatchAll)
	}
	if len(dests) == 0 {
		return fmt.Errorf("resolve %s: %w", addr, ErrNotFound)
	}
	return r.expandAll(ctx, addr, detail, dests, path)
}

// expandLocal tries an exact alias, then a mailbox.
func (r *resolver) expandLocal(ctx context.Context, addr, detail string, path []string) (bool, error) {
	dests, err := r.u.Domains.LookupAliases(ctx, addr)
	if err != nil {
		return false, fmt.Errorf("resolve %s: %w", addr, err)
	}
	if len(dests) > 0 {
		return true, r.expandAll(ctx, addr, detail, dests, path)
	}
	ok, err := r.mailbox(ctx, addr, detail)
	return ok, err
}

func (r *resolver) mailbox(ctx context.Context, addr, detail string) (bool, error) {
	acct, err := r.u.Accounts.LookupAccount(ctx, addr)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("resolve %s: %w", addr, err)
	case !acct.Active:
		return true, fmt.Errorf("resolve %s: account %w", addr, ErrDisabled)
	}
	return true, r.emit(Destination{Address: acct.Address, Local: true, Detail: detail})
}

func (r *resolver) expandAll(ctx context.Context, addr, detail string, dests, path []string) error {
	for _, dest := range dests {
		dest, err := Canonical(strings.TrimSpace(dest))
		if err != nil {
			return fmt.Errorf("resolve %s: alias destination: %w", addr, err)
		}
		if dest == addr {
			// "alice → alice, archive": deliver to alice's own mailbox.
			if _, err := r.mailbox(ctx, addr, detail); err != nil {
				return err
			}
			continue
		}
		if err := r.expand(ctx, dest, detail, append(path, addr)); err != nil {
			return err
		}
	}
	return nil
}

// DetailAddress is the address that resolves to the mailbox address with
// the plus-addressing tag detail (user+tag@domain): what a delivery to be
// retried is queued as, so the retry keeps the tag. Without a delimiter or
// a tag it is address.
func (u *Users) DetailAddress(address, detail string) string {
	local, domain, err := Split(address)
	if u.RecipientDelimiter == "" || detail == "" || err != nil {
		return address
	}
	return local + u.RecipientDelimiter + detail + "@" + domain
}

// Mailbox is DetailAddress's inverse: the local destination of an address
// that names a mailbox, the account itself or else the account of the
// address without its plus tag (with the tag as Detail). Unlike Resolve it
// expands no alias, alias domain or catch-all: the delivery agent retries
// a destination it resolved earlier this way, so that the retry reaches
// exactly that mailbox even when the address is also an alias ("alice →
// alice, archive") or the aliases changed meanwhile. ErrNotFound when no
// such account exists (any more), ErrDisabled for a disabled account or
// domain.
func (u *Users) Mailbox(ctx context.Context, address string) (Destination, error) {
	addr, err := Canonical(address)
	if err != nil {
		return Destination{}, err
	}
	local, domain, err := Split(addr)
	if err != nil {
		return Destination{}, err
	}
	ctx, cancel := u.bound(ctx)
	defer cancel()
	d, err := u.Domains.LookupDomain(ctx, domain)
	switch {
	case errors.Is(err, ErrNotFound):
		// The account decides, as for a login (checkActive).
	case err != nil:
		return Destination{}, fmt.Errorf("mailbox %s: %w", addr, err)
	case !d.Active:
		return Destination{}, fmt.Errorf("mailbox %s: domain %w", addr, ErrDisabled)
	}
	r := resolver{u: u, seen: map[string]bool{}}
	found, err := r.mailbox(ctx, addr, "")
	if !found && err == nil {
		if base, tag, ok := u.splitDetail(local); ok {
			found, err = r.mailbox(ctx, base+"@"+domain, tag)
		}
	}
	switch {
	case err != nil:
		return Destination{}, err
	case !found:
		return Destination{}, fmt.Errorf("mailbox %s: %w", addr, ErrNotFound)
	}
	return r.out[0], nil
}

// splitDetail splits a plus-address local part ("user+tag") into the user
// and the tag.
func (u *Users) splitDetail(local string) (base, tag string, ok bool) {
	delim := u.RecipientDelimiter
	if delim == "" {
		return "", "", false
	}
	i := strings.Index(local, delim)
	if i <= 0 {
		return "", "", false
	}
	return local[:i], local[i+len(delim):], true
}
