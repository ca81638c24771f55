package senderauth

import "strings"

// ClaimsUs reports whether an Authentication-Results field value names
// authServID as its authserv-id (RFC 8601 2.2, compared without case).
// Such a field that arrives with a message was not written by us and
// would be believed by our users' filters: it must go (RFC 8601 5).
func ClaimsUs(value, authServID string) bool {
	id := AuthServID(value)
	return id != "" && strings.EqualFold(id, authServID)
}

// AuthServID extracts the authserv-id from an Authentication-Results
// field value: the first token or quoted-string after comments and
// folding white space. "" when there is none.
func AuthServID(value string) string {
	s := skipCFWS(value)
	if s == "" {
		return ""
	}
	if s[0] == '"' {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				if i+1 < len(s) {
					i++
					b.WriteByte(s[i])
				}
			case '"':
				return b.String()
			default:
				b.WriteByte(s[i])
			}
		}
		return "" // unterminated
	}
	end := strings.IndexAny(s, " \t\r\n;()\"")
	if end < 0 {
		end = len(s)
	}
	return s[:end]
}

// skipCFWS drops leading white space and (possibly nested) comments.
func skipCFWS(s string) string {
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		if s == "" || s[0] != '(' {
			return s
		}
		depth := 0
		i := 0
	comment:
		for ; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 {
					break comment
				}
			}
		}
		if i >= len(s) {
			return "" // unterminated comment: nothing follows
		}
		s = s[i+1:]
	}
}
