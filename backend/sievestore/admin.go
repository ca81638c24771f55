package sievestore

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vmaild/vmaild/backend/sieve"
)

// Admin is the administrator's scripts that run around every user's own,
// Pigeonhole's sieve_before and sieve_after: "spam into Junk" for
// everyone, or per domain. A path holding "%d" is per domain (the
// recipient's domain replaces it) and may be missing for domains without
// one; any other path must exist. Scripts are compiled through Cache,
// once per change of their file.
//
// Admin.Scripts is what a delivery filter runs, in order, with
// sieve.RunAll; `vmaild sieve test USER` runs the same sequence.
type Admin struct {
	Before, After []string
	// Cache compiles the scripts, the users' too; nil: a cache of this
	// Admin's own, made on first use (an Admin must then not be copied).
	Cache *Cache
	own   Cache
}

func (a *Admin) cache() *Cache {
	if a.Cache != nil {
		return a.Cache
	}
	return &a.own
}

// Scripts returns the compiled scripts of one delivery to the user whose
// scripts are s and whose domain is domain, in the order they run: the
// before scripts, the user's active script (nil when none is active), the
// after scripts. A script that does not compile is an error naming its
// file (a *sieve.Error inside): the caller keeps the message.
func (a *Admin) Scripts(s Scripts, domain string) (before []*sieve.Script, personal *sieve.Script, after []*sieve.Script, err error) {
	if before, err = a.load(a.Before, domain); err != nil {
		return nil, nil, nil, err
	}
	_, path, err := s.Active()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("sieve active script in %s: %w", s.Home, err)
	}
	if path != "" {
		personal, err = a.cache().Load(path)
		if errors.Is(err, os.ErrNotExist) {
			personal, err = nil, nil // deactivated meanwhile
		}
		if err != nil {
			return nil, nil, nil, err
		}
	}
	if after, err = a.load(a.After, domain); err != nil {
		return nil, nil, nil, err
	}
	return before, personal, after, nil
}

// Sequence is Scripts as one list, what sieve.RunAll takes.
func (a *Admin) Sequence(s Scripts, domain string) ([]*sieve.Script, error) {
	before, personal, after, err := a.Scripts(s, domain)
	if err != nil {
		return nil, err
	}
	if personal != nil {
		before = append(before, personal)
	}
	return append(before, after...), nil
}

func (a *Admin) load(paths []string, domain string) ([]*sieve.Script, error) {
	var out []*sieve.Script
	for _, p := range paths {
		perDomain := strings.Contains(p, "%d")
		if perDomain {
			if domain == "" || domain[0] == '.' || strings.ContainsAny(domain, "/\x00") {
				continue
			}
			p = strings.ReplaceAll(p, "%d", strings.ToLower(domain))
		}
		sc, err := a.cache().Load(p)
		if perDomain && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sieve admin script: %w", err)
		}
		out = append(out, sc)
	}
	return out, nil
}

// Check compiles the scripts that do not depend on a domain, for a check
// at start and `vmaild config check`.
func (a *Admin) Check() error {
	for _, p := range append(append([]string(nil), a.Before...), a.After...) {
		if strings.Contains(p, "%d") {
			continue
		}
		if _, err := a.cache().Load(p); err != nil {
			return fmt.Errorf("sieve admin script: %w", err)
		}
	}
	return nil
}
