// Package userdb is vmaild's user directory: the one place every front end
// (SMTP, submission, LMTP, IMAP, POP3) asks who a user is, whether a password
// is right, whether a domain is ours and where an address delivers to.
//
// Backends implement small source interfaces (AccountSource, DomainSource,
// SenderMap, QuotaStore); the Users type composes them, adds alias
// resolution, catch-all, alias domains and plus-addressing once for all
// backends, decides who may send as which address (MaySendAs), and is what
// the protocols see through the Directory interface. Errors are classified once
// here: ErrNotFound / ErrBadCredentials / ErrDisabled mean "no" (5xx, NO),
// ErrUnavailable means "try later" (4xx, NO [UNAVAILABLE]).
package userdb

import "context"

// Account is a virtual user: a mailbox with a password, no system account.
type Account struct {
	// Address is the canonical login and mailbox address (lower case).
	Address string
	// Name is the display name (cn in LDAP).
	Name string
	// Active is false for a disabled account: it cannot log in and receives
	// no mail.
	Active bool
	// Quota is the account's own limit; nil means the domain default.
	Quota *Limit
	// Maildir optionally overrides the store's path template for this
	// account (LDAP mailMessageStore, SQL maildir column).
	Maildir string
	// SenderAddresses are further addresses the account may send as, kept
	// on the account's own entry (LDAP's sender_address attribute); an
	// "@domain" value grants the whole domain. Users.MaySendAs reads them;
	// SQL keeps its grants in the sender map instead.
	SenderAddresses []string
	// SendLimits are the account's own sending limits when its source
	// keeps them on the entry (LDAP); Users.SendLimits completes them.
	SendLimits SendLimits
}

// Limit is a quota limit. A zero field means unlimited.
type Limit struct {
	Bytes    int64
	Messages int64
}

// Unlimited reports whether neither bytes nor messages are limited.
func (l Limit) Unlimited() bool { return l.Bytes <= 0 && l.Messages <= 0 }

// Usage is what an account's mailbox uses now.
type Usage struct {
	Bytes    int64
	Messages int64
}

// Domain is a mail domain served by this installation.
type Domain struct {
	Name   string
	Active bool
	// Quota is the default limit for accounts of this domain that have none
	// of their own.
	Quota Limit
	// CatchAll, when set, receives mail for unknown local parts.
	CatchAll string
	// AliasFor makes this an alias domain: user@Name is user@AliasFor.
	AliasFor string
}

// Alias is one source → destination row. A source of "@domain" is a
// catch-all for that domain (PostfixAdmin's convention).
type Alias struct {
	Source      string
	Destination string
}

// AccountSource serves accounts and passwords (LDAP or SQL).
type AccountSource interface {
	// LookupAccount returns the account for a canonical address, or an error
	// wrapping ErrNotFound or ErrUnavailable.
	LookupAccount(ctx context.Context, address string) (*Account, error)
	// Authenticate checks password for a canonical address. It returns the
	// account, or an error wrapping ErrNotFound, ErrBadCredentials or
	// ErrUnavailable. It does not judge Active; Users does.
	Authenticate(ctx context.Context, address, password string) (*Account, error)
}

// DomainSource serves domains and aliases (SQL or LDAP).
type DomainSource interface {
	// LookupDomain returns a domain by lower-case name, or ErrNotFound.
	LookupDomain(ctx context.Context, name string) (*Domain, error)
	// LookupAliases returns the destinations stored for exactly this source
	// ("local@domain" or "@domain"); none is (nil, nil), not an error.
	LookupAliases(ctx context.Context, source string) ([]string, error)
}

// SenderMap is the explicit sender-login map, Postfix's
// smtpd_sender_login_maps: the logins that may send as an address that is
// not their own.
type SenderMap interface {
	// SenderLogins returns the logins allowed to send as exactly key
	// ("local@domain", or "@domain" for every address of a domain); none
	// is (nil, nil), not an error.
	SenderLogins(ctx context.Context, key string) ([]string, error)
}

// SenderGrant is one row of the sender map: Login may send as Address
// ("local@domain" or "@domain").
type SenderGrant struct {
	Address string
	Login   string
}

// SenderAdmin changes the sender map; the admin CLI uses it.
type SenderAdmin interface {
	// AddSender lets login send as address; ErrExists when it already may.
	AddSender(ctx context.Context, address, login string) error
	// DeleteSender removes one grant, or every grant of address when login
	// is "".
	DeleteSender(ctx context.Context, address, login string) error
	// ListSenders lists the grants of a domain's addresses, or all when
	// domain is "".
	ListSenders(ctx context.Context, domain string) ([]SenderGrant, error)
}

// QuotaStore keeps quota usage. Every change is an atomic increment in the
// database, never a read-modify-write in Go.
type QuotaStore interface {
	Usage(ctx context.Context, address string) (Usage, error)
	// AddUsage adds (or with negative values, subtracts) atomically.
	AddUsage(ctx context.Context, address string, bytes, messages int64) error
	// ReserveUsage adds bytes and messages only if the result stays within
	// limit (zero fields unlimited), atomically; ok is false when it would
	// not fit and nothing was changed.
	ReserveUsage(ctx context.Context, address string, bytes, messages int64, limit Limit) (ok bool, err error)
	// SetUsage overwrites usage; only `vmaild quota recalc` uses it.
	SetUsage(ctx context.Context, address string, u Usage) error
}

// Reservation is one account's charge in a batch of ReserveUsages.
type Reservation struct {
	Address         string
	Bytes, Messages int64
	Limit           Limit
}

// QuotaBatcher is a QuotaStore that can charge several accounts in one
// transaction: a message to an alias of ten mailboxes then commits once
// instead of ten times.
type QuotaBatcher interface {
	// ReserveUsages applies ReserveUsage's rule to each reservation, all
	// in one transaction; ok[i] says whether rs[i] fitted (and was
	// charged). On error nothing was charged.
	ReserveUsages(ctx context.Context, rs []Reservation) (ok []bool, err error)
}

// ReserveUsages charges rs on qs, in one transaction when qs is a
// QuotaBatcher and one reservation at a time otherwise. On error nothing
// was charged.
func ReserveUsages(ctx context.Context, qs QuotaStore, rs []Reservation) ([]bool, error) {
	if b, ok := qs.(QuotaBatcher); ok {
		return b.ReserveUsages(ctx, rs)
	}
	ok := make([]bool, len(rs))
	for i, r := range rs {
		fit, err := qs.ReserveUsage(ctx, r.Address, r.Bytes, r.Messages, r.Limit)
		if err != nil {
			// Take back what this batch charged: all or nothing.
			for j := range i {
				if ok[j] {
					qs.AddUsage(context.WithoutCancel(ctx), rs[j].Address, -rs[j].Bytes, -rs[j].Messages)
				}
			}
			return nil, err
		}
		ok[i] = fit
	}
	return ok, nil
}

// AccountAdmin changes accounts; the admin CLI and LDIF import use it.
type AccountAdmin interface {
	// AddAccount creates an account; passwordHash is already hashed
	// ({SCHEME}…). It fails with ErrExists when the address is taken.
	AddAccount(ctx context.Context, a Account, passwordHash string) error
	// PutAccount creates or updates (LDIF import: idempotent).
	PutAccount(ctx context.Context, a Account, passwordHash string) (created bool, err error)
	DeleteAccount(ctx context.Context, address string) error
	SetPassword(ctx context.Context, address, passwordHash string) error
	SetAccountQuota(ctx context.Context, address string, limit *Limit) error
	// ListAccounts lists a domain's accounts, or all when domain is "".
	ListAccounts(ctx context.Context, domain string) ([]Account, error)
}

// DomainAdmin changes domains and aliases.
type DomainAdmin interface {
	AddDomain(ctx context.Context, d Domain) error
	DeleteDomain(ctx context.Context, name string) error
	ListDomains(ctx context.Context) ([]Domain, error)
	AddAlias(ctx context.Context, source, destination string) error
	// DeleteAlias removes one row, or every row of source when destination
	// is "".
	DeleteAlias(ctx context.Context, source, destination string) error
	// ListAliases lists a domain's aliases, or all when domain is "".
	ListAliases(ctx context.Context, domain string) ([]Alias, error)
}

// Directory is what the protocol front ends and the delivery agent use.
type Directory interface {
	// Authenticate takes the login as typed by the client (full address, or
	// a bare local part when a default domain is configured).
	Authenticate(ctx context.Context, login, password string) (*Account, error)
	Account(ctx context.Context, address string) (*Account, error)
	IsLocalDomain(ctx context.Context, domain string) (bool, error)
	// Resolve expands an address to its final destinations.
	Resolve(ctx context.Context, address string) ([]Destination, error)
	QuotaLimit(ctx context.Context, address string) (Limit, error)
	// MaySendAs reports whether the authenticated account may use address
	// as its sender (MAIL FROM, header From and Sender). An error is the
	// directory failing (ErrUnavailable: try later), never a "no".
	MaySendAs(ctx context.Context, account, address string) (bool, error)
}

// Destination is one final target of an address.
type Destination struct {
	// Address is the account address (Local) or the remote address.
	Address string
	Local   bool
	// Detail is the plus-addressing tag of the original address ("tag" of
	// user+tag@), for delivery into a folder when configured.
	Detail string
}

// SendLimits are the sending limits the directory sets for one account or
// one domain (package protocols/sendlimit applies them). A nil field is
// not set there, so the configured default applies; 0 is unlimited.
type SendLimits struct {
	MessagesPerHour      *int64
	RecipientsPerMessage *int64
	RecipientsPerHour    *int64
}

// Or fills the fields s leaves unset from o.
func (s SendLimits) Or(o SendLimits) SendLimits {
	if s.MessagesPerHour == nil {
		s.MessagesPerHour = o.MessagesPerHour
	}
	if s.RecipientsPerMessage == nil {
		s.RecipientsPerMessage = o.RecipientsPerMessage
	}
	if s.RecipientsPerHour == nil {
		s.RecipientsPerHour = o.RecipientsPerHour
	}
	return s
}

// SendLimitSource serves the sending limits kept beside accounts and
// domains (SQL columns).
type SendLimitSource interface {
	// SendLimits returns the limits stored for the account address and
	// for domain; an address or a domain without a row has none set.
	SendLimits(ctx context.Context, address, domain string) (account, dom SendLimits, err error)
}
