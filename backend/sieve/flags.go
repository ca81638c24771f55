package sieve

import "strings"

// flags.go: imap4flags' flag lists (RFC 5232): space-separated, compared
// case-insensitively, each flag once.

var systemFlags = map[string]string{
	`\seen`: `\Seen`, `\answered`: `\Answered`, `\flagged`: `\Flagged`,
	`\deleted`: `\Deleted`, `\draft`: `\Draft`,
}

// splitFlags splits a flag list string into flags, dropping repeats.
func splitFlags(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if c, ok := systemFlags[strings.ToLower(f)]; ok {
			f = c
		}
		if !hasFlag(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func hasFlag(fs []string, f string) bool {
	for _, x := range fs {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}

func joinFlags(fs []string) string { return strings.Join(splitFlags(strings.Join(fs, " ")), " ") }

func joinFlagsList(fs []string) []string { return splitFlags(strings.Join(fs, " ")) }

func removeFlags(fs, drop []string) []string {
	var out []string
	for _, f := range fs {
		if !hasFlag(drop, f) {
			out = append(out, f)
		}
	}
	return out
}

// validFlags drops what claims to be a system flag but is none (\Bogus),
// as Pigeonhole does at run time. Keywords stay as the script wrote them,
// even those IMAP cannot store: ValidFlag is the store's test.
func validFlags(fs []string) []string {
	var out []string
	for _, f := range fs {
		if strings.HasPrefix(f, `\`) {
			if _, ok := systemFlags[strings.ToLower(f)]; !ok {
				continue
			}
		}
		out = append(out, f)
	}
	return out
}

// ValidFlag says whether IMAP can store f: one of the system flags, or a
// keyword of atom characters (RFC 3501). A delivery drops the others, as
// Dovecot does with a script's invalid keywords.
func ValidFlag(f string) bool {
	if strings.HasPrefix(f, `\`) {
		_, ok := systemFlags[strings.ToLower(f)]
		return ok
	}
	return isAtom(f)
}

// flagList is the flags a keep stores, from the internal variable.
func flagList(s string) []string { return validFlags(splitFlags(s)) }

// isAtom is RFC 3501's atom: no controls, space or atom-specials.
func isAtom(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 127 || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return s != ""
}
