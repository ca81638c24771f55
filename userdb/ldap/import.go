package ldap

import (
	"context"
	"fmt"
	"slices"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/vmaild/vmaild/userdb"
	"github.com/vmaild/vmaild/userdb/ldif"
)

// ImportResult says what ImportEntry did (or, in a dry run, would do).
type ImportResult int

const (
	// Unchanged: the entry exists with exactly these values.
	Unchanged ImportResult = iota
	// Created: the DN was new.
	Created
	// Updated: the entry existed and some attribute differed.
	Updated
)

func (r ImportResult) String() string {
	return [...]string{"unchanged", "created", "updated"}[r]
}

// ImportEntry writes one LDIF entry as it is: added when its DN is new,
// otherwise the attributes whose values differ from the directory's are
// replaced (what `vmaild ldif import` does for an LDAP account backend).
// An entry that matches the directory is Unchanged and nothing is
// written, so importing the same file twice reports no change. With
// dryRun nothing is ever written; the result is what would happen.
// Entries must come parent first.
func (s *Source) ImportEntry(ctx context.Context, e ldif.Entry, dryRun bool) (ImportResult, error) {
	op := fmt.Sprintf("ldap import %q (line %d)", e.DN, e.Line)
	if len(e.Attrs) == 0 {
		return Unchanged, fmt.Errorf("%s: entry has no attributes", op)
	}
	names := make([]string, len(e.Attrs))
	for i, a := range e.Attrs {
		names[i] = a.Name
	}
	current, err := s.readEntry(ctx, e.DN, names)
	if err != nil {
		return Unchanged, classify(op, err)
	}
	if current == nil {
		if dryRun {
			return Created, nil
		}
		add := goldap.NewAddRequest(e.DN, nil)
		for _, a := range e.Attrs {
			add.Attribute(a.Name, a.Values)
		}
		err := s.do(ctx, s.search, "ldap import", func(c *goldap.Conn) error { return c.Add(add) })
		if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
			return Unchanged, fmt.Errorf("%s: parent entry missing (entries must come parent first): %w", op, err)
		}
		if err != nil {
			return Unchanged, classify(op, err)
		}
		return Created, nil
	}
	mod := goldap.NewModifyRequest(e.DN, nil)
	for _, a := range e.Attrs {
		if !sameValues(a.Name, current.GetEqualFoldAttributeValues(a.Name), a.Values) {
			mod.Replace(a.Name, a.Values)
		}
	}
	if len(mod.Changes) == 0 {
		return Unchanged, nil
	}
	if dryRun {
		return Updated, nil
	}
	err = s.do(ctx, s.search, "ldap import", func(c *goldap.Conn) error { return c.Modify(mod) })
	if err != nil {
		return Unchanged, classify(op, err)
	}
	return Updated, nil
}

// readEntry returns the entry at dn with the named attributes, or nil
// when there is none. An attribute the service account may not read
// (userPassword under a strict ACL) comes back empty and so counts as
// changed: the import then rewrites it, which is harmless.
func (s *Source) readEntry(ctx context.Context, dn string, attrs []string) (*goldap.Entry, error) {
	req := goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases,
		1, s.timeLimit(), false, "(objectClass=*)", attrs, nil)
	var res *goldap.SearchResult
	err := s.do(ctx, s.search, "ldap import read", func(c *goldap.Conn) error {
		var err error
		res, err = c.Search(req)
		return err
	})
	if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(res.Entries) == 0 {
		return nil, nil
	}
	return res.Entries[0], nil
}

// sameValues compares an attribute's values as sets. Object classes
// compare case-insensitively and "top", which the server may keep or
// omit, is ignored; other values compare exactly, as the import writes
// them exactly.
func sameValues(name string, have, want []string) bool {
	norm := func(vs []string) []string {
		out := make([]string, 0, len(vs))
		for _, v := range vs {
			if strings.EqualFold(name, "objectClass") {
				v = strings.ToLower(v)
				if v == "top" {
					continue
				}
			}
			out = append(out, v)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(have), norm(want))
}

// Schema is what the directory's schema defines: an import strips what
// the directory does not know, or what no object class left on an entry
// allows, instead of having the server refuse the entry.
type Schema struct {
	// attrs maps every name and OID of an attribute type, lower-cased,
	// to its first name.
	attrs map[string]string
	// classes maps every name and OID of an object class, lower-cased.
	classes map[string]*objectClass
}

type objectClass struct {
	sup   []string
	attrs []string // MUST and MAY, lower-cased as written
}

// HasAttribute reports whether the schema defines the attribute named in
// an LDIF attribute description ("cn;lang-de" is cn).
func (sc Schema) HasAttribute(desc string) bool {
	name, _, _ := strings.Cut(desc, ";")
	_, ok := sc.attrs[strings.ToLower(name)]
	return ok
}

// HasObjectClass reports whether the schema defines the object class.
func (sc Schema) HasObjectClass(name string) bool {
	_, ok := sc.classes[strings.ToLower(name)]
	return ok
}

// Allows reports whether an entry of the given object classes may hold
// the attribute (MUST or MAY of a class or of its superclasses).
func (sc Schema) Allows(classes []string, desc string) bool {
	name, _, _ := strings.Cut(desc, ";")
	want, ok := sc.attrs[strings.ToLower(name)]
	if !ok {
		return false
	}
	if want == "objectclass" {
		return true
	}
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(c string) bool {
		c = strings.ToLower(c)
		if seen[c] {
			return false
		}
		seen[c] = true
		if c == "extensibleobject" {
			return true
		}
		oc := sc.classes[c]
		if oc == nil {
			return false
		}
		for _, a := range oc.attrs {
			if sc.attrs[a] == want {
				return true
			}
		}
		return slices.ContainsFunc(oc.sup, walk)
	}
	return slices.ContainsFunc(classes, walk)
}

// ReadSchema reads the attribute types and object classes of the
// directory's subschema subentry (RFC 4512 4.2).
func (s *Source) ReadSchema(ctx context.Context) (Schema, error) {
	const op = "ldap read schema"
	root, err := s.readEntry(ctx, "", []string{"subschemaSubentry"})
	if err != nil {
		return Schema{}, classify(op, err)
	}
	sub := "cn=Subschema"
	if root != nil {
		if v := root.GetAttributeValue("subschemaSubentry"); v != "" {
			sub = v
		}
	}
	req := goldap.NewSearchRequest(sub, goldap.ScopeBaseObject, goldap.NeverDerefAliases,
		1, s.timeLimit(), false, "(objectClass=subschema)", []string{"attributeTypes", "objectClasses"}, nil)
	var res *goldap.SearchResult
	err = s.do(ctx, s.search, op, func(c *goldap.Conn) error {
		var err error
		res, err = c.Search(req)
		return err
	})
	if err != nil {
		return Schema{}, classify(op, err)
	}
	if len(res.Entries) == 0 {
		return Schema{}, fmt.Errorf("%s: %s: %w", op, sub, userdb.ErrNotFound)
	}
	e := res.Entries[0]
	sc := Schema{attrs: map[string]string{}, classes: map[string]*objectClass{}}
	for _, def := range e.GetEqualFoldAttributeValues("attributeTypes") {
		d := parseDefinition(def)
		names := append(d["NAME"], d["OID"]...)
		for _, n := range names {
			sc.attrs[n] = names[0]
		}
	}
	for _, def := range e.GetEqualFoldAttributeValues("objectClasses") {
		d := parseDefinition(def)
		oc := &objectClass{sup: d["SUP"], attrs: append(d["MUST"], d["MAY"]...)}
		for _, n := range append(d["NAME"], d["OID"]...) {
			sc.classes[n] = oc
		}
	}
	if len(sc.attrs) == 0 || len(sc.classes) == 0 {
		return Schema{}, fmt.Errorf("%s: %s lists no definitions (may the service account read it?)", op, sub)
	}
	return sc, nil
}

// parseDefinition reads the OID and the NAME, SUP, MUST and MAY fields of
// one RFC 4512 definition, lower-cased: "( 2.5.6.6 NAME 'person' SUP top
// STRUCTURAL MUST ( sn $ cn ) MAY ( ... ) )".
func parseDefinition(def string) map[string][]string {
	f := strings.Fields(strings.NewReplacer("(", " ( ", ")", " ) ", "$", " ").Replace(def))
	out := map[string][]string{}
	if len(f) > 1 && f[0] == "(" {
		out["OID"] = []string{strings.ToLower(f[1])}
	}
	for i := 0; i < len(f); i++ {
		key := f[i]
		if key != "NAME" && key != "SUP" && key != "MUST" && key != "MAY" || i+1 >= len(f) {
			continue
		}
		var vals []string
		if f[i+1] != "(" {
			vals, i = []string{f[i+1]}, i+1
		} else {
			j := i + 2
			for ; j < len(f) && f[j] != ")"; j++ {
				vals = append(vals, f[j])
			}
			i = j
		}
		for k, v := range vals {
			vals[k] = strings.ToLower(strings.Trim(v, "'"))
		}
		out[key] = append(out[key], vals...)
	}
	return out
}

// AccountObjectClass is the auxiliary class that carries the account
// attributes (quota, active, maildir); an import adds it to an entry it
// gives such attributes.
func (s *Source) AccountObjectClass() string { return s.cfg.AccountObjectClass }
