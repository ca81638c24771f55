package userdb

import (
	"context"
	"fmt"
)

// SendLimits returns the sending limits the directory sets for an
// account and for its domain. Limits on the account's own entry (LDAP
// attributes) come first; fields they leave unset come from Limits (the
// SQL columns), so an LDAP directory may keep some limits and SQL others.
func (u *Users) SendLimits(ctx context.Context, address string) (account, domain SendLimits, err error) {
	ctx, cancel := u.bound(ctx)
	defer cancel()
	acct, err := u.Account(ctx, address)
	if err != nil {
		return SendLimits{}, SendLimits{}, err
	}
	account = acct.SendLimits
	if u.Limits == nil {
		return account, SendLimits{}, nil
	}
	_, dom, err := Split(acct.Address)
	if err != nil {
		return SendLimits{}, SendLimits{}, err
	}
	stored, domain, err := u.Limits.SendLimits(ctx, acct.Address, dom)
	if err != nil {
		return SendLimits{}, SendLimits{}, fmt.Errorf("sending limits of %s: %w", acct.Address, err)
	}
	return account.Or(stored), domain, nil
}
