package ldap

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/password"
)

var (
	_ userdb.AccountSource = (*Source)(nil)
	_ userdb.AccountAdmin  = (*Source)(nil)
	_ userdb.Bounded       = (*Source)(nil)
)

// maxKey bounds the address a request may carry. Canonical addresses are
// at most 254 octets; anything far longer is not an account, and is
// answered without a directory round trip.
const maxKey = 1024

// checkKey refuses, as "no such account", keys no directory entry can
// match: overlong ones and ones with control characters (NUL included).
// The filter escaping would make them harmless; this keeps them off the
// wire and out of the server's logs.
func checkKey(address string) error {
	if address == "" {
		return errors.New("empty address")
	}
	if len(address) > maxKey {
		return fmt.Errorf("address longer than %d bytes", maxKey)
	}
	for i := 0; i < len(address); i++ {
		if c := address[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("control character %#02x in address", c)
		}
	}
	return nil
}

// LookupAccount returns the account whose entry the user filter finds for
// address.
func (s *Source) LookupAccount(ctx context.Context, address string) (*userdb.Account, error) {
	e, err := s.findUser(ctx, "ldap lookup", address, s.accountAttrs())
	if err != nil {
		return nil, err
	}
	return s.account(e, address)
}

// SetHashCaps bounds the cost parameters of the stored hashes Authenticate
// verifies (password.Caps; the zero value is the defaults). Call it before
// serving.
func (s *Source) SetHashCaps(c password.Caps) { s.hashCaps = c }

// Authenticate checks password for address: against the password
// attribute with password.Caps.Verify, or with AuthBind by binding as the
// entry's DN. An empty password never authenticates: to LDAP a simple bind
// with an empty password is an anonymous bind that "succeeds".
func (s *Source) Authenticate(ctx context.Context, address, plain string) (*userdb.Account, error) {
	if plain == "" {
		return nil, fmt.Errorf("ldap authenticate: %w: empty password", userdb.ErrBadCredentials)
	}
	// One deadline for the search and the user bind together: a login
	// answers within the timeout, not within twice it.
	ctx, cancel := s.bound(ctx)
	defer cancel()
	attrs := s.accountAttrs()
	if !s.cfg.AuthBind {
		attrs = append(attrs, s.cfg.Attributes.Password)
	}
	e, err := s.findUser(ctx, "ldap authenticate", address, attrs)
	if err != nil {
		return nil, err
	}
	if s.cfg.AuthBind {
		if err := s.userBind(ctx, e.DN, plain); err != nil {
			return nil, err
		}
	} else if err := s.verify(ctx, e, plain); err != nil {
		return nil, err
	}
	return s.account(e, address)
}

func (s *Source) userBind(ctx context.Context, dn, plain string) error {
	if dn == "" {
		// Never reached with entries from a search, but an empty DN with
		// a password is the other unauthenticated-bind trap.
		return fmt.Errorf("ldap auth bind: %w: empty DN", userdb.ErrBadCredentials)
	}
	err := s.do(ctx, s.auth, "ldap auth bind", func(c *goldap.Conn) error {
		_, err := c.SimpleBind(&goldap.SimpleBindRequest{Username: dn, Password: plain})
		return err
	})
	if goldap.IsErrorAnyOf(err, goldap.LDAPResultUnwillingToPerform, goldap.LDAPResultConstraintViolation) {
		// slapd says unwillingToPerform for disallowed binds and
		// constraintViolation for some password policy refusals.
		return fmt.Errorf("ldap auth bind %q: %w: %w", dn, userdb.ErrBadCredentials, err)
	}
	return classify(fmt.Sprintf("ldap auth bind %q", dn), err)
}

// verify checks plain against every stored value of the password
// attribute (an entry may carry several hashes during a scheme migration).
func (s *Source) verify(ctx context.Context, e *goldap.Entry, plain string) error {
	stored := e.GetEqualFoldAttributeValues(s.cfg.Attributes.Password)
	if len(stored) == 0 {
		return fmt.Errorf("ldap authenticate %q: %w: no %s readable (does the service account have read access?)",
			e.DN, userdb.ErrBadCredentials, s.cfg.Attributes.Password)
	}
	var verifyErr error
	for _, h := range stored {
		ok, err := s.hashCaps.Verify(ctx, h, plain)
		if errors.Is(err, password.ErrNotAdmitted) {
			// The login service had no room to verify: not the user's fault.
			return userdb.Unavailable(fmt.Sprintf("ldap authenticate %q", e.DN), err)
		}
		if ok && err == nil {
			return nil
		}
		if err != nil {
			verifyErr = err
		}
	}
	if verifyErr != nil {
		return fmt.Errorf("ldap authenticate %q: %w: %w", e.DN, userdb.ErrBadCredentials, verifyErr)
	}
	return fmt.Errorf("ldap authenticate %q: %w", e.DN, userdb.ErrBadCredentials)
}

// accountAttrs are the attributes an Account is made of; searches ask for
// exactly these, never for everything.
func (s *Source) accountAttrs() []string {
	a := s.cfg.Attributes
	attrs := []string{a.Mail, a.Name}
	for _, n := range []string{a.QuotaBytes, a.QuotaMessages, a.Active, a.Maildir, a.SenderAddress,
		a.SendMessagesPerHour, a.SendRecipientsPerMessage, a.SendRecipientsPerHour} {
		if n != "" {
			attrs = append(attrs, n)
		}
	}
	return attrs
}

// findUser returns the one entry the user filter matches for address.
func (s *Source) findUser(ctx context.Context, op, address string, attrs []string) (*goldap.Entry, error) {
	if err := checkKey(address); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", op, userdb.ErrNotFound, err)
	}
	filter, err := userFilter(s.cfg.UserFilter, address)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	// SizeLimit 2: enough to tell "one" from "more than one".
	req := goldap.NewSearchRequest(s.cfg.BaseDN, s.scope, goldap.NeverDerefAliases,
		2, s.timeLimit(), false, filter, attrs, nil)
	var res *goldap.SearchResult
	err = s.do(ctx, s.search, op, func(c *goldap.Conn) error {
		var err error
		res, err = c.Search(req)
		return err
	})
	if goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded) ||
		(err == nil && len(res.Entries) > 1) {
		return nil, fmt.Errorf("%s %q: %w (filter %s)", op, address, ErrAmbiguous, filter)
	}
	if err != nil {
		return nil, classify(fmt.Sprintf("%s %q", op, address), err)
	}
	if len(res.Entries) == 0 {
		return nil, fmt.Errorf("%s %q: %w", op, address, userdb.ErrNotFound)
	}
	return res.Entries[0], nil
}

// timeLimit is the server-side search time limit in whole seconds.
func (s *Source) timeLimit() int {
	return int((s.cfg.Timeout + 999_999_999) / 1_000_000_000)
}

// account makes an Account of an entry. address is what the entry was
// looked up by; the account's address is the entry's mail value equal to
// it, else its first mail value (the filter may match on uid or aliases).
func (s *Source) account(e *goldap.Entry, address string) (*userdb.Account, error) {
	a := s.cfg.Attributes
	acct := &userdb.Account{Active: true}
	mails := e.GetEqualFoldAttributeValues(a.Mail)
	for _, m := range mails {
		if strings.EqualFold(m, address) {
			acct.Address = strings.ToLower(m)
			break
		}
	}
	if acct.Address == "" && len(mails) > 0 {
		acct.Address = strings.ToLower(mails[0])
	}
	if acct.Address == "" {
		acct.Address = strings.ToLower(address)
	}
	acct.Name = e.GetEqualFoldAttributeValue(a.Name)
	if a.Active != "" {
		if v := e.GetEqualFoldAttributeValue(a.Active); v != "" {
			active, err := parseBool(v)
			if err != nil {
				// Fail closed: an unreadable flag must not enable an
				// account an admin meant to disable.
				return nil, fmt.Errorf("ldap entry %q: %s: %w", e.DN, a.Active, err)
			}
			acct.Active = active
		}
	}
	var limit userdb.Limit
	var haveLimit bool
	for _, q := range []struct {
		attr string
		dst  *int64
	}{{a.QuotaBytes, &limit.Bytes}, {a.QuotaMessages, &limit.Messages}} {
		if q.attr == "" {
			continue
		}
		v := e.GetEqualFoldAttributeValue(q.attr)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("ldap entry %q: %s: %q is not a non-negative integer", e.DN, q.attr, v)
		}
		*q.dst, haveLimit = n, true
	}
	if haveLimit {
		acct.Quota = &limit
	}
	for _, q := range []struct {
		attr string
		dst  **int64
	}{
		{a.SendMessagesPerHour, &acct.SendLimits.MessagesPerHour},
		{a.SendRecipientsPerMessage, &acct.SendLimits.RecipientsPerMessage},
		{a.SendRecipientsPerHour, &acct.SendLimits.RecipientsPerHour},
	} {
		if q.attr == "" {
			continue
		}
		v := e.GetEqualFoldAttributeValue(q.attr)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			// Fail closed, like the active flag: an unreadable limit
			// must not become no limit.
			return nil, fmt.Errorf("ldap entry %q: %s: %q is not a non-negative integer", e.DN, q.attr, v)
		}
		*q.dst = &n
	}
	if a.Maildir != "" {
		acct.Maildir = e.GetEqualFoldAttributeValue(a.Maildir)
	}
	if a.SenderAddress != "" {
		// Kept as stored: userdb.Users.MaySendAs checks each value and
		// ignores the malformed ones, so one typo does not lock the
		// account out of the others.
		if vs := e.GetEqualFoldAttributeValues(a.SenderAddress); len(vs) > 0 {
			acct.SenderAddresses = vs
		}
	}
	return acct, nil
}

// parseBool reads LDAP Boolean syntax (TRUE/FALSE, RFC 4517 3.3.3) and the
// 1/0, yes/no spellings of non-standard schemas.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "y":
		return true, nil
	case "false", "0", "no", "n":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a Boolean", v)
}

func formatBool(b bool) string {
	if b {
		return "TRUE"
	}
	return "FALSE"
}
