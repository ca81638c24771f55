package ldap

import (
	"fmt"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"
)

// expand substitutes %u (address), %n (local part), %d (domain) and %%
// in tmpl, passing every value through escape first: the address comes
// from a client and must never change the structure of a filter or DN.
func expand(tmpl, address string, escape func(string) string) (string, error) {
	local, domain := address, ""
	if at := strings.LastIndexByte(address, '@'); at >= 0 {
		local, domain = address[:at], address[at+1:]
	}
	var b strings.Builder
	b.Grow(len(tmpl) + 3*len(address))
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(tmpl) {
			return "", fmt.Errorf("template %q ends in a lone %%", tmpl)
		}
		i++
		switch tmpl[i] {
		case 'u':
			b.WriteString(escape(address))
		case 'n':
			b.WriteString(escape(local))
		case 'd':
			b.WriteString(escape(domain))
		case '%':
			b.WriteByte('%')
		default:
			return "", fmt.Errorf("template %q: unknown placeholder %%%c (want %%u, %%n, %%d or %%%%)", tmpl, tmpl[i])
		}
	}
	return b.String(), nil
}

func userFilter(tmpl, address string) (string, error) {
	return expand(tmpl, address, goldap.EscapeFilter)
}

func userDN(tmpl, address string) (string, error) {
	return expand(tmpl, address, goldap.EscapeDN)
}

// checkFilterTemplate refuses, at configuration time, a template that
// does not give a valid filter.
func checkFilterTemplate(tmpl string) error {
	f, err := userFilter(tmpl, "user@example.com")
	if err != nil {
		return err
	}
	if _, err := goldap.CompileFilter(f); err != nil {
		return fmt.Errorf("%q is not a valid filter: %w", tmpl, err)
	}
	return nil
}

func checkDNTemplate(tmpl string) error {
	dn, err := userDN(tmpl, "user@example.com")
	if err != nil {
		return err
	}
	if _, err := goldap.ParseDN(dn); err != nil {
		return fmt.Errorf("%q is not a valid DN: %w", tmpl, err)
	}
	return nil
}
