package ldap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/vmaild/vmaild/userdb"
)

// listPageSize is the paged-results page size of ListAccounts, below
// slapd's default size limit of 500.
const listPageSize = 250

// AddAccount creates an entry at the UserDN template's DN. It fails with
// ErrExists when the filter already finds an account for the address or
// the DN is taken.
func (s *Source) AddAccount(ctx context.Context, a userdb.Account, passwordHash string) error {
	addr, err := userdb.Canonical(a.Address)
	if err != nil {
		return fmt.Errorf("ldap add account: %w", err)
	}
	a.Address = addr
	switch _, err := s.findUser(ctx, "ldap add account", addr, []string{"1.1"}); {
	case err == nil:
		return fmt.Errorf("ldap add account %q: %w", addr, userdb.ErrExists)
	case !errors.Is(err, userdb.ErrNotFound):
		return err
	}
	return s.addAccount(ctx, a, passwordHash)
}

func (s *Source) addAccount(ctx context.Context, a userdb.Account, passwordHash string) error {
	dn, err := userDN(s.cfg.UserDN, a.Address)
	if err != nil {
		return fmt.Errorf("ldap add account %q: %w", a.Address, err)
	}
	req := goldap.NewAddRequest(dn, nil)
	attrs := s.cfg.Attributes
	req.Attribute("objectClass", s.cfg.ObjectClasses)
	have := map[string]bool{"objectclass": true}
	add := func(name string, values ...string) {
		have[strings.ToLower(name)] = true
		req.Attribute(name, values)
	}
	local, _, _ := strings.Cut(a.Address, "@")
	add(attrs.Mail, a.Address)
	person := s.personClass()
	if name := a.Name; name != "" || person {
		if name == "" {
			name = local
		}
		add(attrs.Name, name)
		if person && !strings.EqualFold(attrs.Name, "sn") {
			// person requires sn; the last word of the name is the
			// best guess at a surname.
			sn := name
			if i := strings.LastIndexByte(strings.TrimSpace(name), ' '); i >= 0 {
				sn = strings.TrimSpace(name)[i+1:]
			}
			add("sn", sn)
		}
	}
	if passwordHash != "" {
		add(attrs.Password, passwordHash)
	}
	mods, err := s.settings(a, false)
	if err != nil {
		return fmt.Errorf("ldap add account %q: %w", a.Address, err)
	}
	for _, m := range mods {
		if len(m.Vals) > 0 {
			add(m.Type, m.Vals...)
		}
	}
	// The RDN's values must be in the entry (uid=… for the default DN).
	parsed, err := goldap.ParseDN(dn)
	if err != nil || len(parsed.RDNs) == 0 {
		return fmt.Errorf("ldap add account %q: DN %q: %v", a.Address, dn, err)
	}
	for _, ava := range parsed.RDNs[0].Attributes {
		if !have[strings.ToLower(ava.Type)] {
			add(ava.Type, ava.Value)
		}
	}
	err = s.do(ctx, s.search, "ldap add account", func(c *goldap.Conn) error { return c.Add(req) })
	if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
		return fmt.Errorf("ldap add account %q: parent of %q does not exist: %w", a.Address, dn, err)
	}
	return classify(fmt.Sprintf("ldap add account %q (%s)", a.Address, dn), err)
}

// personClass reports whether new entries are persons, which need cn and sn.
func (s *Source) personClass() bool {
	for _, oc := range s.cfg.ObjectClasses {
		switch strings.ToLower(oc) {
		case "person", "organizationalperson", "inetorgperson":
			return true
		}
	}
	return false
}

// settings are the replace-modifications that store an account's active
// flag, quota and maildir. An attribute that is not configured is skipped
// while a matches what "not stored" means, and is an
// ErrAttributeNotConfigured error otherwise: silently dropping a quota or a
// disabled flag would be worse than refusing.
func (s *Source) settings(a userdb.Account, update bool) ([]goldap.PartialAttribute, error) {
	attrs := s.cfg.Attributes
	var mods []goldap.PartialAttribute
	set := func(name string, value string) {
		var vals []string
		if value != "" {
			vals = []string{value}
		}
		mods = append(mods, goldap.PartialAttribute{Type: name, Vals: vals})
	}
	if attrs.Active != "" {
		set(attrs.Active, formatBool(a.Active))
	} else if !a.Active {
		return nil, fmt.Errorf("%w: cannot store a disabled account without the active attribute", ErrAttributeNotConfigured)
	}
	quota, err := s.quotaMods(a.Quota)
	if err != nil {
		return nil, err
	}
	mods = append(mods, quota...)
	if attrs.Maildir != "" {
		if a.Maildir != "" || update {
			set(attrs.Maildir, a.Maildir)
		}
	} else if a.Maildir != "" {
		return nil, fmt.Errorf("%w: cannot store a maildir without the maildir attribute", ErrAttributeNotConfigured)
	}
	return mods, nil
}

// quotaMods replaces the quota attributes; nil or zero fields delete them
// (no own limit: the domain default applies).
func (s *Source) quotaMods(l *userdb.Limit) ([]goldap.PartialAttribute, error) {
	attrs := s.cfg.Attributes
	var lim userdb.Limit
	if l != nil {
		lim = *l
	}
	if lim.Bytes < 0 || lim.Messages < 0 {
		return nil, fmt.Errorf("negative quota %+v", lim)
	}
	var mods []goldap.PartialAttribute
	for _, q := range []struct {
		attr, what string
		n          int64
	}{{attrs.QuotaBytes, "bytes", lim.Bytes}, {attrs.QuotaMessages, "messages", lim.Messages}} {
		switch {
		case q.attr != "":
			var vals []string
			if q.n > 0 {
				vals = []string{strconv.FormatInt(q.n, 10)}
			}
			mods = append(mods, goldap.PartialAttribute{Type: q.attr, Vals: vals})
		case q.n > 0:
			return nil, fmt.Errorf("%w: a quota in %s needs the quota_%s attribute", ErrAttributeNotConfigured, q.what, q.what)
		}
	}
	return mods, nil
}

// PutAccount creates the account, or makes the existing entry match a:
// name, active flag, quota and maildir are replaced; the password only
// when passwordHash is not empty, so an import without passwords keeps
// the users' own.
func (s *Source) PutAccount(ctx context.Context, a userdb.Account, passwordHash string) (bool, error) {
	addr, err := userdb.Canonical(a.Address)
	if err != nil {
		return false, fmt.Errorf("ldap put account: %w", err)
	}
	a.Address = addr
	e, err := s.findUser(ctx, "ldap put account", addr, []string{"objectClass"})
	if errors.Is(err, userdb.ErrNotFound) {
		if err := s.addAccount(ctx, a, passwordHash); err != nil {
			return false, err
		}
		return true, nil
	}
	if err != nil {
		return false, err
	}
	mods, err := s.settings(a, true)
	if err != nil {
		return false, fmt.Errorf("ldap put account %q: %w", addr, err)
	}
	if a.Name != "" {
		mods = append(mods, goldap.PartialAttribute{Type: s.cfg.Attributes.Name, Vals: []string{a.Name}})
	}
	if passwordHash != "" {
		mods = append(mods, goldap.PartialAttribute{Type: s.cfg.Attributes.Password, Vals: []string{passwordHash}})
	}
	return false, s.modify(ctx, "ldap put account", e, mods)
}

// modify replaces attributes of an entry found with its objectClass, adding
// the account object class first when a schema attribute is set and the
// entry does not have it yet.
func (s *Source) modify(ctx context.Context, op string, e *goldap.Entry, mods []goldap.PartialAttribute) error {
	if len(mods) == 0 {
		return nil
	}
	req := goldap.NewModifyRequest(e.DN, nil)
	if s.needsAccountClass(e, mods) {
		req.Add("objectClass", []string{s.cfg.AccountObjectClass})
	}
	for _, m := range mods {
		req.Replace(m.Type, m.Vals)
	}
	err := s.do(ctx, s.search, op, func(c *goldap.Conn) error { return c.Modify(req) })
	return classify(fmt.Sprintf("%s %q", op, e.DN), err)
}

// needsAccountClass reports whether the modification sets one of the
// account class's attributes on an entry that lacks the class. The class
// is only added when new accounts get it too (it is in ObjectClasses):
// an admin whose attributes come from another schema lists that one.
func (s *Source) needsAccountClass(e *goldap.Entry, mods []goldap.PartialAttribute) bool {
	oc := s.cfg.AccountObjectClass
	equal := func(v string) bool { return strings.EqualFold(v, oc) }
	if !slices.ContainsFunc(s.cfg.ObjectClasses, equal) ||
		slices.ContainsFunc(e.GetEqualFoldAttributeValues("objectClass"), equal) {
		return false
	}
	a := s.cfg.Attributes
	for _, m := range mods {
		if len(m.Vals) == 0 {
			continue // deleting needs no class
		}
		for _, n := range []string{a.QuotaBytes, a.QuotaMessages, a.Active, a.Maildir} {
			if n != "" && strings.EqualFold(m.Type, n) {
				return true
			}
		}
	}
	return false
}

// DeleteAccount deletes the account's entry.
func (s *Source) DeleteAccount(ctx context.Context, address string) error {
	e, err := s.findUser(ctx, "ldap delete account", address, []string{"1.1"})
	if err != nil {
		return err
	}
	err = s.do(ctx, s.search, "ldap delete account", func(c *goldap.Conn) error {
		return c.Del(goldap.NewDelRequest(e.DN, nil))
	})
	if goldap.IsErrorWithCode(err, goldap.LDAPResultNotAllowedOnNonLeaf) {
		return fmt.Errorf("ldap delete account %q: entry %q has children: %w", address, e.DN, err)
	}
	return classify(fmt.Sprintf("ldap delete account %q (%s)", address, e.DN), err)
}

// SetPassword replaces the stored password hash. With AuthBind the hash
// must be in a scheme slapd verifies itself ({SSHA}, {CRYPT}, or
// {ARGON2} with the argon2 module).
func (s *Source) SetPassword(ctx context.Context, address, passwordHash string) error {
	if passwordHash == "" {
		// An entry without a password would be one an AuthBind setup can
		// never log in to, and a hash mode one with nothing to check.
		return fmt.Errorf("ldap set password %q: empty password hash", address)
	}
	e, err := s.findUser(ctx, "ldap set password", address, []string{"objectClass"})
	if err != nil {
		return err
	}
	return s.modify(ctx, "ldap set password", e, []goldap.PartialAttribute{
		{Type: s.cfg.Attributes.Password, Vals: []string{passwordHash}},
	})
}

// SetAccountQuota sets the account's own limit; nil removes it (the domain
// default applies). It needs the quota attributes configured.
func (s *Source) SetAccountQuota(ctx context.Context, address string, limit *userdb.Limit) error {
	a := s.cfg.Attributes
	if a.QuotaBytes == "" && a.QuotaMessages == "" {
		return fmt.Errorf("ldap set quota %q: %w: set attributes.quota_bytes and/or quota_messages (vmaild schema: vmailQuotaBytes, vmailQuotaMessages)",
			address, ErrAttributeNotConfigured)
	}
	mods, err := s.quotaMods(limit)
	if err != nil {
		return fmt.Errorf("ldap set quota %q: %w", address, err)
	}
	e, err := s.findUser(ctx, "ldap set quota", address, []string{"objectClass"})
	if err != nil {
		return err
	}
	return s.modify(ctx, "ldap set quota", e, mods)
}

// ListAccounts lists the accounts with a mail address in domain, or all
// accounts when domain is "", sorted by address.
func (s *Source) ListAccounts(ctx context.Context, domain string) ([]userdb.Account, error) {
	mail := s.cfg.Attributes.Mail
	var cond string
	if domain != "" {
		d, err := userdb.CanonicalDomain(domain)
		if err != nil {
			return nil, fmt.Errorf("ldap list accounts: %w", err)
		}
		domain = d
		cond = "(" + mail + "=*@" + goldap.EscapeFilter(d) + ")"
	} else {
		cond = "(" + mail + "=*)"
	}
	filter := "(&" + s.cfg.ListFilter + cond + ")"
	req := goldap.NewSearchRequest(s.cfg.BaseDN, s.scope, goldap.NeverDerefAliases,
		0, s.timeLimit(), false, filter, s.accountAttrs(), nil)
	var res *goldap.SearchResult
	// A listing takes as long as the directory is large: each page is
	// bounded by the timeout, the whole only by ctx.
	err := s.attempt(ctx, s.search, "ldap list accounts", func(c *goldap.Conn) error {
		// The paging control is part of the request; a retry starts over.
		req.Controls = nil
		var err error
		res, err = c.SearchWithPaging(req, listPageSize)
		return err
	})
	if goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded) {
		return nil, fmt.Errorf("ldap list accounts: directory size limit reached after %d entries; raise the service account's limits (olcLimits size=unlimited): %w",
			len(res.Entries), err)
	}
	if err != nil {
		return nil, classify("ldap list accounts", err)
	}
	var out []userdb.Account
	for _, e := range res.Entries {
		key := ""
		for _, m := range e.GetEqualFoldAttributeValues(mail) {
			if domain == "" || strings.HasSuffix(strings.ToLower(m), "@"+domain) {
				key = m
				break
			}
		}
		if key == "" {
			continue
		}
		acct, err := s.account(e, key)
		if err != nil {
			return nil, err
		}
		out = append(out, *acct)
	}
	slices.SortFunc(out, func(x, y userdb.Account) int { return strings.Compare(x.Address, y.Address) })
	return out, nil
}

// exists reports whether an entry with exactly this DN exists.
func (s *Source) exists(ctx context.Context, dn string) (bool, error) {
	req := goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases,
		1, s.timeLimit(), false, "(objectClass=*)", []string{"1.1"}, nil)
	err := s.do(ctx, s.search, "ldap exists", func(c *goldap.Conn) error {
		_, err := c.Search(req)
		return err
	})
	if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
		return false, nil
	}
	return err == nil, err
}
