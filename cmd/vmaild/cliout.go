package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vmaild/vmaild/userdb"
)

// The JSON shapes of the list and show commands. Field names are stable
// for scripts; sizes are plain byte counts (0: unlimited or none), so a
// script need not parse units.

// limitJSON is a quota limit; null in accountJSON.Quota means the domain
// default.
type limitJSON struct {
	Bytes    int64 `json:"bytes"`
	Messages int64 `json:"messages"`
}

type domainJSON struct {
	Name     string    `json:"name"`
	Active   bool      `json:"active"`
	Quota    limitJSON `json:"quota"`
	CatchAll string    `json:"catch_all,omitempty"`
	AliasFor string    `json:"alias_for,omitempty"`
}

type accountJSON struct {
	Address string     `json:"address"`
	Name    string     `json:"name,omitempty"`
	Active  bool       `json:"active"`
	Quota   *limitJSON `json:"quota"`
	Maildir string     `json:"maildir,omitempty"`
}

// accountShowJSON is `user show` and `quota show`: the account with its
// effective limit and what it uses.
type accountShowJSON struct {
	accountJSON
	EffectiveQuota limitJSON `json:"effective_quota"`
	Usage          limitJSON `json:"usage"`
}

func toLimitJSON(l *userdb.Limit) *limitJSON {
	if l == nil {
		return nil
	}
	return &limitJSON{Bytes: l.Bytes, Messages: l.Messages}
}

func toDomainJSON(d userdb.Domain) domainJSON {
	return domainJSON{Name: d.Name, Active: d.Active, Quota: *toLimitJSON(&d.Quota), CatchAll: d.CatchAll, AliasFor: d.AliasFor}
}

func toAccountJSON(a userdb.Account) accountJSON {
	return accountJSON{Address: a.Address, Name: a.Name, Active: a.Active, Quota: toLimitJSON(a.Quota), Maildir: a.Maildir}
}

// jsonFlag gives cmd the --json flag every list and show command has.
func jsonFlag(cmd *cobra.Command) *bool {
	var on bool
	cmd.Flags().BoolVar(&on, "json", false, "print JSON instead of a table")
	return &on
}

// explain turns the directory's classified answers into what an admin can
// act on: "user alice@example.com already exists", not the SQL constraint
// that said so. what is "user alice@example.com"; list is the command
// that shows what exists.
func explain(err error, what, list string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, userdb.ErrExists):
		return fmt.Errorf("%s already exists", what)
	case errors.Is(err, userdb.ErrNotFound):
		return fmt.Errorf("%s does not exist (`vmaild %s` lists them)", what, list)
	}
	return err
}

// badArg is an argument a command cannot use (a malformed address, a
// size without a number): a usage error, exit status 2.
func badArg(cmd *cobra.Command, err error) error {
	return usageError{fmt.Sprintf("%s%v (see %s --help)", commandPrefix(cmd), err, cmd.CommandPath())}
}

// quotaJSONRow is `quota show --json`.
type quotaJSONRow struct {
	Address string    `json:"address"`
	Limit   limitJSON `json:"limit"`
	Usage   limitJSON `json:"usage"`
}
