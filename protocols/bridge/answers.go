package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/protocols/login"
	"github.com/vmaild/vmaild/protocols/sasl"
	"github.com/vmaild/vmaild/protocols/smtp"
	"github.com/vmaild/vmaild/userdb"
)

// Directory is what the bridge asks: the directory every front end uses,
// and the lookups Postfix's tables ask the other way round (*userdb.Users).
type Directory interface {
	userdb.Directory
	// Mailbox is the mailbox an address names, without alias expansion.
	Mailbox(ctx context.Context, address string) (userdb.Destination, error)
	// DetailAddress puts a plus tag back on a mailbox address.
	DetailAddress(address, detail string) string
	// SenderLogins lists the logins that may send as an address.
	SenderLogins(ctx context.Context, address string) ([]string, error)
}

// Answers decides what every bridge protocol answers, once: the protocols
// only put the answers on their wire, and `vmaild auth test` and `vmaild
// lookup` print them.
type Answers struct {
	Directory Directory
	// Agent is the delivery agent whose Resolve is vmaild's own RCPT
	// check: the policy service answers what vmaild's SMTP would.
	Agent delivery.Agent
	// Logins is the login service every listener shares; nil checks
	// passwords without throttling (tests of the protocols alone).
	Logins login.Guard
}

// Authenticator is one SASL check of a client through the login service,
// counted against client (the address the MTA reports; invalid when it
// reports none). account receives the authenticated account.
func (a *Answers) Authenticator(client netip.Addr, account **userdb.Account) sasl.Authenticator {
	return sasl.Authenticator(func(ctx context.Context, username, password string) error {
		acct, err := a.Directory.Authenticate(ctx, username, password)
		if err == nil && acct == nil {
			err = userdb.ErrBadCredentials
		}
		if err == nil {
			*account = acct
		}
		return err
	}).Guarded(a.Logins, client)
}

// Authenticate checks a login and password as one attempt of client.
func (a *Answers) Authenticate(ctx context.Context, client netip.Addr, username, password string) (*userdb.Account, error) {
	var acct *userdb.Account
	err := a.Authenticator(client, &acct)(ctx, username, password)
	return acct, err
}

// Temporary reports whether an authentication or lookup error means "try
// later" (directory down, no room to verify, too slow) rather than "no".
func Temporary(err error) bool {
	return errors.Is(err, login.ErrBusy) || userdb.Temporary(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// Table is a Postfix lookup table the bridge serves; its name is the
// Postfix parameter it is meant for.
type Table string

// The tables.
const (
	MailboxDomains Table = "virtual_mailbox_domains"
	Mailboxes      Table = "virtual_mailbox_maps"
	Aliases        Table = "virtual_alias_maps"
	SenderLogins   Table = "smtpd_sender_login_maps"
)

// Tables lists the tables served, in the order the README names them.
var Tables = []Table{MailboxDomains, Mailboxes, Aliases, SenderLogins}

// Status is the class of a lookup's answer, as socketmap names them.
type Status string

// The statuses.
const (
	Found    Status = "OK"
	NotFound Status = "NOTFOUND"
	TempFail Status = "TEMP"
	PermFail Status = "PERM"
)

// Result is one lookup's answer: the value when Found, the reason when it
// failed.
type Result struct {
	Status Status
	Value  string
}

func (r Result) String() string {
	if r.Value == "" {
		return string(r.Status)
	}
	return string(r.Status) + " " + r.Value
}

var (
	notFound   = Result{Status: NotFound}
	tempResult = Result{Status: TempFail, Value: "directory temporarily unavailable"}
)

// errorResult classifies a directory error: not found for an unknown,
// disabled, looping or malformed address (one Postfix has no mailbox
// for), else "try later": an error of no known class is a failure of
// ours, and must not make Postfix refuse mail, as the delivery agent
// never bounces on one.
func errorResult(err error) Result {
	switch {
	case Temporary(err):
	case errors.Is(err, userdb.ErrNotFound), errors.Is(err, userdb.ErrDisabled),
		errors.Is(err, userdb.ErrAliasLoop), errors.Is(err, userdb.ErrInvalid):
		return notFound
	}
	return tempResult
}

// Lookup answers one key of a table with vmaild's own resolution, the one
// SMTP RCPT and submission use:
//
//   - virtual_mailbox_domains: a domain mail is delivered for (a domain or
//     an alias domain), its name as value;
//   - virtual_mailbox_maps: an address naming a mailbox (itself, or with a
//     plus tag), the mailbox address as value;
//   - virtual_alias_maps: an address of a local domain, its final
//     destinations (aliases, catch-all, alias domains, plus tags), comma
//     separated; a mailbox maps to itself, which ends Postfix's recursion;
//   - smtpd_sender_login_maps: the logins that may send as an address.
//
// Postfix's fallback keys ("@domain", a bare local part) find nothing:
// the full address's answer already took catch-alls and domain grants
// into account.
func (a *Answers) Lookup(ctx context.Context, table Table, key string) Result {
	if !slices.Contains(Tables, table) {
		return Result{Status: PermFail, Value: fmt.Sprintf("no such table %q", string(table))}
	}
	ctx, cancel := userdb.Bound(ctx, a.Directory)
	defer cancel()
	if table == MailboxDomains {
		ok, err := a.Directory.IsLocalDomain(ctx, key)
		switch {
		case err != nil:
			return errorResult(err)
		case !ok:
			return notFound
		}
		d, _ := userdb.CanonicalDomain(key)
		return Result{Status: Found, Value: d}
	}
	addr, err := userdb.Canonical(key)
	if err != nil {
		return notFound // "@domain", a bare local part, junk
	}
	switch table {
	case Mailboxes:
		d, err := a.Directory.Mailbox(ctx, addr)
		if err != nil {
			return errorResult(err)
		}
		return Result{Status: Found, Value: d.Address}
	case Aliases:
		dests, err := a.Directory.Resolve(ctx, addr)
		if err != nil {
			return errorResult(err)
		}
		if len(dests) == 1 && !dests[0].Local && dests[0].Address == addr {
			return notFound // not one of our domains
		}
		out := make([]string, len(dests))
		for i, d := range dests {
			out[i] = d.Address
			if d.Local {
				out[i] = a.Directory.DetailAddress(d.Address, d.Detail)
			}
		}
		return Result{Status: Found, Value: strings.Join(out, ",")}
	case SenderLogins:
		logins, err := a.Directory.SenderLogins(ctx, addr)
		switch {
		case err != nil:
			return errorResult(err)
		case len(logins) == 0:
			return notFound
		}
		return Result{Status: Found, Value: strings.Join(logins, ",")}
	}
	return Result{Status: PermFail, Value: fmt.Sprintf("no such table %q", string(table))}
}

// Recipient is vmaild's RCPT verdict on a recipient: Accepted for one it
// would take or that is not in a local domain (not ours to judge), else
// the outcome refusing it (NoSuchUser, Disabled, MailboxFull when every
// mailbox it reaches is full, DirectoryDown …).
func (a *Answers) Recipient(ctx context.Context, rcpt string) delivery.Outcome {
	ctx, cancel := userdb.Bound(ctx, a.Directory)
	defer cancel()
	_, domain, err := userdb.Split(rcpt)
	if err != nil {
		return delivery.Perm(delivery.BadAddress)
	}
	local, err := a.Directory.IsLocalDomain(ctx, domain)
	switch {
	case err != nil:
		return delivery.Temp(delivery.DirectoryDown)
	case !local:
		return delivery.Outcome{Kind: delivery.Accepted}
	}
	addr, err := userdb.Canonical(rcpt)
	if err != nil {
		return delivery.Perm(delivery.BadAddress)
	}
	_, o := a.Agent.Resolve(ctx, addr)
	return o
}

// Reply is the SMTP reply vmaild gives for an outcome (smtp.Reply, the one
// mapping).
func Reply(o delivery.Outcome) *gosmtp.SMTPError { return smtp.Reply(o) }
