package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/ldap"
	"github.com/vmaild/vmaild/userdb/ldif"
)

// An importField is what an LDIF attribute means to vmaild. `ldif import
// --map attr=field` names one of these.
type importField string

const (
	fieldMail          importField = "mail"           // the account's address
	fieldPassword      importField = "password"       // {SCHEME} hash
	fieldName          importField = "name"           // display name
	fieldQuotaBytes    importField = "quota_bytes"    // storage limit in bytes
	fieldQuotaKiB      importField = "quota_kib"      // storage limit in KiB (Kolab, Dovecot's storage=)
	fieldQuotaMiB      importField = "quota_mib"      // storage limit in MiB
	fieldQuotaMessages importField = "quota_messages" // message count limit
	fieldQuotaRule     importField = "quota_rule"     // Dovecot quota_rule: *:storage=1G, *:bytes=N, *:messages=N
	fieldActive        importField = "active"         // TRUE/FALSE, active/disabled, yes/no, 1/0
	fieldMaildir       importField = "maildir"        // Maildir path override
	fieldSender        importField = "sender"         // may also send as
	fieldAlias         importField = "alias"          // further address delivering to the account
	fieldForward       importField = "forward"        // destination the account's mail goes to
	fieldIgnore        importField = "ignore"         // dropped
)

var importFields = []importField{fieldMail, fieldPassword, fieldName, fieldQuotaBytes, fieldQuotaKiB, fieldQuotaMiB,
	fieldQuotaMessages, fieldQuotaRule, fieldActive, fieldMaildir, fieldSender, fieldAlias, fieldForward, fieldIgnore}

// foreignFields are the attributes of the mail schemas admins migrate
// from, with their units:
//   - iRedMail (mailUser): mailQuota in bytes (0: unlimited),
//     accountStatus active/disabled, mailAlternateAddress and
//     shadowAddress (more addresses of the mailbox), mailForwardingAddress
//     (where its mail goes; the account's own address among them keeps a
//     copy, as in vmaild's aliases);
//   - mailboxQuota, as some Postfix/Dovecot LDAP layouts name it, in bytes;
//   - Dovecot's and PostfixAdmin's quota (bytes: Dovecot's LDAP example
//     maps it to quota_rule=*:bytes=, PostfixAdmin's quota column is
//     bytes) and a Dovecot quota_rule kept in quotaRule;
//   - qmail-ldap: mailQuotaSize (bytes), mailQuotaCount (messages).
//
// Anything else takes --map.
var foreignFields = map[string]importField{
	"mailquota":             fieldQuotaBytes,
	"mailboxquota":          fieldQuotaBytes,
	"quota":                 fieldQuotaBytes,
	"quotarule":             fieldQuotaRule,
	"mailquotasize":         fieldQuotaBytes,
	"mailquotacount":        fieldQuotaMessages,
	"accountstatus":         fieldActive,
	"mailalternateaddress":  fieldAlias,
	"shadowaddress":         fieldAlias,
	"mailforwardingaddress": fieldForward,
}

// importMapping says which attribute carries which field. Attributes of
// the configured (or vmaild's) LDAP schema are native: in LDAP mode they
// are written as they are. The others are foreign: in LDAP mode their
// values move to the native attributes (or into SQL aliases) and the
// foreign attribute is dropped, as the directory's schema may not know it.
type importMapping struct {
	native  ldap.Attributes
	byAttr  map[string]importField // lower-case attribute name → field
	foreign map[string]bool        // lower-case attribute names not native
}

// newImportMapping starts from the native attributes and the foreign
// schemas and applies --map attr=field overrides.
func newImportMapping(native ldap.Attributes, overrides []string) (importMapping, error) {
	m := importMapping{native: native, byAttr: map[string]importField{}, foreign: map[string]bool{}}
	for a, f := range foreignFields {
		m.byAttr[a], m.foreign[a] = f, true
	}
	for _, p := range []struct {
		attr  string
		field importField
	}{
		{native.Mail, fieldMail}, {native.Password, fieldPassword}, {native.Name, fieldName},
		{native.QuotaBytes, fieldQuotaBytes}, {native.QuotaMessages, fieldQuotaMessages},
		{native.Active, fieldActive}, {native.Maildir, fieldMaildir}, {native.SenderAddress, fieldSender},
	} {
		if p.attr != "" {
			a := strings.ToLower(p.attr)
			m.byAttr[a] = p.field
			delete(m.foreign, a)
		}
	}
	for _, o := range overrides {
		attr, field, ok := strings.Cut(o, "=")
		attr, f := strings.ToLower(strings.TrimSpace(attr)), importField(strings.TrimSpace(field))
		if !ok || attr == "" || !slices.Contains(importFields, f) {
			return importMapping{}, fmt.Errorf("--map %q: want attribute=field, field one of %s", o, joinFields())
		}
		m.byAttr[attr] = f
		if _, native := nativeField(native, attr); !native {
			m.foreign[attr] = true
		}
	}
	return m, nil
}

func joinFields() string {
	s := make([]string, len(importFields))
	for i, f := range importFields {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// nativeField reports whether attr is one of the configured attributes.
func nativeField(at ldap.Attributes, attr string) (importField, bool) {
	for _, p := range []struct {
		name string
		f    importField
	}{{at.Mail, fieldMail}, {at.Password, fieldPassword}, {at.Name, fieldName}, {at.QuotaBytes, fieldQuotaBytes},
		{at.QuotaMessages, fieldQuotaMessages}, {at.Active, fieldActive}, {at.Maildir, fieldMaildir}, {at.SenderAddress, fieldSender}} {
		if p.name != "" && strings.EqualFold(p.name, attr) {
			return p.f, true
		}
	}
	return "", false
}

// fieldOf is the field an attribute description ("cn;lang-de") carries.
func (m importMapping) fieldOf(desc string) (importField, bool) {
	name, _, _ := strings.Cut(desc, ";")
	f, ok := m.byAttr[strings.ToLower(name)]
	return f, ok
}

// importRecord is what one entry says about one account.
type importRecord struct {
	acct     userdb.Account
	hash     string
	aliases  []string // addresses that deliver to acct
	forwards []string // where acct's mail goes
	senders  []string
	// ldapQuota and ldapActive are set when a foreign attribute gave them
	// (LDAP mode writes them to the native attributes).
	foreignQuota, foreignActive bool
}

// translate reads an entry through the mapping. errNoMail: the entry is
// no account (a base or ou entry).
func (m importMapping) translate(e ldif.Entry) (importRecord, error) {
	rec := importRecord{acct: userdb.Account{Active: true}}
	var mail string
	var quota userdb.Limit
	haveQuota := false
	for _, a := range e.Attrs {
		f, ok := m.fieldOf(a.Name)
		if !ok || len(a.Values) == 0 {
			continue
		}
		foreign := m.foreign[strings.ToLower(a.Name)]
		v := a.Values[0]
		bad := func(what string) error { return fmt.Errorf("%s: %q is not %s", a.Name, v, what) }
		switch f {
		case fieldMail:
			mail = v
		case fieldPassword:
			rec.hash = v
		case fieldName:
			rec.acct.Name = v
		case fieldMaildir:
			rec.acct.Maildir = v
		case fieldSender:
			rec.senders = append(rec.senders, a.Values...)
		case fieldAlias:
			rec.aliases = append(rec.aliases, a.Values...)
		case fieldForward:
			rec.forwards = append(rec.forwards, a.Values...)
		case fieldActive:
			switch strings.ToLower(v) {
			case "true", "active", "enabled", "yes", "1":
				rec.acct.Active = true
			case "false", "disabled", "deleted", "noaccess", "no", "0":
				rec.acct.Active = false
			default:
				return importRecord{}, bad("TRUE/FALSE, active/disabled, yes/no or 1/0")
			}
			rec.foreignActive = rec.foreignActive || foreign
		case fieldQuotaBytes, fieldQuotaKiB, fieldQuotaMiB, fieldQuotaMessages:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return importRecord{}, bad("a non-negative integer")
			}
			switch f {
			case fieldQuotaKiB:
				n <<= 10
			case fieldQuotaMiB:
				n <<= 20
			}
			if f == fieldQuotaMessages {
				quota.Messages = n
			} else {
				quota.Bytes = n
			}
			haveQuota = true
			rec.foreignQuota = rec.foreignQuota || foreign
		case fieldQuotaRule:
			for _, rule := range a.Values {
				if err := parseQuotaRule(rule, &quota); err != nil {
					return importRecord{}, fmt.Errorf("%s: %w", a.Name, err)
				}
			}
			haveQuota = true
			rec.foreignQuota = rec.foreignQuota || foreign
		}
	}
	if mail == "" {
		return importRecord{}, errNoMail
	}
	addr, err := userdb.Canonical(mail)
	if err != nil {
		return importRecord{}, err
	}
	rec.acct.Address = addr
	if haveQuota {
		rec.acct.Quota = &quota
	}
	return rec, nil
}

// parseQuotaRule reads a Dovecot quota rule for all mailboxes
// ("*:storage=1G", "*:bytes=1073741824:messages=1000"). As in Dovecot,
// storage without a unit is KiB and bytes without one is bytes; units
// are b, k, M, G, T. Rules for one mailbox (Trash:...) and percentages
// have no counterpart in vmaild and are refused rather than misread.
func parseQuotaRule(rule string, l *userdb.Limit) error {
	box, limits, ok := strings.Cut(rule, ":")
	if !ok || box != "*" {
		return fmt.Errorf("quota rule %q: only rules for every mailbox (*:storage=…) can be imported", rule)
	}
	for _, kv := range strings.Split(limits, ":") {
		k, v, _ := strings.Cut(kv, "=")
		k = strings.ToLower(k)
		if k == "messages" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("quota rule %q: messages=%q is not a count", rule, v)
			}
			l.Messages = n
			continue
		}
		if k != "storage" && k != "bytes" {
			return fmt.Errorf("quota rule %q: unknown limit %q (storage, bytes or messages)", rule, k)
		}
		unit := int64(1)
		if k == "storage" {
			unit = 1 << 10
		}
		num := strings.TrimRight(v, "bBkKmMgGtT")
		switch strings.ToLower(v[len(num):]) {
		case "":
		case "b":
			unit = 1
		case "k":
			unit = 1 << 10
		case "m":
			unit = 1 << 20
		case "g":
			unit = 1 << 30
		case "t":
			unit = 1 << 40
		default:
			return fmt.Errorf("quota rule %q: unit of %q", rule, v)
		}
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n < 0 || n > (1<<62)/unit {
			return fmt.Errorf("quota rule %q: %s=%q is not a size", rule, k, v)
		}
		l.Bytes = n * unit
	}
	return nil
}

// ldapEntry is the entry as the LDAP account backend gets it: foreign
// attributes are dropped, their quota and status written to the native
// attributes (with the account object class that carries them), and what
// the directory's schema does not know, or no object class left on the
// entry allows, is stripped. notes says what was changed, so nothing
// disappears silently.
func (m importMapping) ldapEntry(e ldif.Entry, rec importRecord, sc ldap.Schema, accountOC string) (ldif.Entry, []string) {
	var native []ldif.Attr
	if q := rec.acct.Quota; rec.foreignQuota && q != nil {
		if m.native.QuotaBytes != "" {
			native = append(native, ldif.Attr{Name: m.native.QuotaBytes, Values: []string{strconv.FormatInt(q.Bytes, 10)}})
		}
		if m.native.QuotaMessages != "" && q.Messages > 0 {
			native = append(native, ldif.Attr{Name: m.native.QuotaMessages, Values: []string{strconv.FormatInt(q.Messages, 10)}})
		}
	}
	if rec.foreignActive && m.native.Active != "" {
		native = append(native, ldif.Attr{Name: m.native.Active, Values: []string{strings.ToUpper(strconv.FormatBool(rec.acct.Active))}})
	}
	var classes, unknownOC []string
	for _, oc := range e.Values("objectClass") {
		if sc.HasObjectClass(oc) {
			classes = append(classes, oc)
		} else {
			unknownOC = append(unknownOC, oc)
		}
	}
	if len(native) > 0 && accountOC != "" && !slices.ContainsFunc(classes, func(v string) bool { return strings.EqualFold(v, accountOC) }) {
		classes = append(classes, accountOC)
	}
	out := ldif.Entry{DN: e.DN, Line: e.Line}
	var mapped, unknown, disallowed []string
	for _, a := range e.Attrs {
		name, _, _ := strings.Cut(a.Name, ";")
		switch {
		case strings.EqualFold(name, "objectClass"):
			a = ldif.Attr{Name: a.Name, Values: classes}
		case m.foreign[strings.ToLower(name)]:
			mapped = append(mapped, a.Name)
			continue
		case slices.ContainsFunc(native, func(n ldif.Attr) bool { return strings.EqualFold(n.Name, name) }):
			continue // the foreign value wins, as it is what translate read
		case !sc.HasAttribute(a.Name):
			unknown = append(unknown, a.Name)
			continue
		case !sc.Allows(classes, a.Name):
			disallowed = append(disallowed, a.Name)
			continue
		}
		out.Attrs = append(out.Attrs, a)
	}
	out.Attrs = append(out.Attrs, native...)
	var notes []string
	if len(mapped) > 0 {
		notes = append(notes, "mapped "+strings.Join(mapped, ", ")+" (quota and status to "+m.nativeNames()+", addresses to SQL aliases)")
	}
	if len(unknownOC) > 0 {
		notes = append(notes, "dropped object class "+strings.Join(unknownOC, ", ")+" (not in the directory's schema)")
	}
	if len(unknown) > 0 {
		notes = append(notes, "dropped "+strings.Join(unknown, ", ")+" (not in the directory's schema; --map them to keep their values)")
	}
	if len(disallowed) > 0 {
		notes = append(notes, "dropped "+strings.Join(disallowed, ", ")+" (no object class left on the entry allows it)")
	}
	return out, notes
}

func (m importMapping) nativeNames() string {
	var n []string
	for _, a := range []string{m.native.QuotaBytes, m.native.QuotaMessages, m.native.Active} {
		if a != "" {
			n = append(n, a)
		}
	}
	return strings.Join(n, "/")
}
