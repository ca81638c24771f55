package sortthread

import "strings"

// BaseSubject extracts the base subject of RFC 5256 section 2.1 from a raw
// Subject header value, and tells whether the subject marked a reply or a
// forward ("Re:", "Fwd:", "(fwd)", "[fwd: …]"). The result is already
// folded by i;unicode-casemap (casemap), because Dovecot folds before it
// looks for "RE", "FW" and "FWD", and SORT and THREAD compare the folded
// form: two subjects are the same thread subject exactly when their
// BaseSubject strings are equal.
func BaseSubject(raw string) (base string, replyOrForward bool) {
	// (1) decode encoded-words, fold, turn tabs and line breaks into
	// spaces and runs of white space into one space.
	s := packSpace(decodeFold(raw))
	for {
		// (2) trailers: "(FWD)" and white space at the end.
		for len(s) > 0 {
			if s[len(s)-1] == ' ' {
				s = s[:len(s)-1]
			} else if strings.HasSuffix(s, "(FWD)") {
				s = s[:len(s)-5]
				replyOrForward = true
			} else {
				break
			}
		}
		for {
			// (3) one leader: blobs, then "RE", "FW" or "FWD", an
			// optional blob and ":"; a leading space always goes.
			found := false
			var leader bool
			s, found, leader = cutLeader(s)
			replyOrForward = replyOrForward || leader
			// (4) a leading blob, unless nothing would be left. When no
			// leader follows a run of blobs, (3) fails the same way
			// after each blob (4) removes: take them all at once,
			// rather than rescanning the run once per blob.
			for {
				rest, ok := cutBlob(s)
				if !ok || rest == "" {
					break
				}
				s = rest
				found = true
				if leader {
					break
				}
			}
			// (5) until neither matches.
			if !found {
				break
			}
		}
		// (6) "[FWD:" … "]" around the whole, then again from (2).
		if strings.HasPrefix(s, "[FWD:") && strings.HasSuffix(s, "]") {
			s = s[5 : len(s)-1]
			replyOrForward = true
			continue
		}
		return s, replyOrForward
	}
}

// packSpace makes every run of tabs, spaces and line breaks one space.
func packSpace(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\t' || c == '\r' || c == '\n' || (c == ' ' && i+1 < len(s) && (s[i+1] == ' ' || s[i+1] == '\t')) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	b := make([]byte, 0, len(s))
	lastSpace := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			if !lastSpace {
				b = append(b, ' ')
			}
			lastSpace = true
			continue
		}
		b = append(b, c)
		lastSpace = false
	}
	return string(b)
}

// cutBlob removes "[" *BLOBCHAR "]" and one space after it.
func cutBlob(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") {
		return s, false
	}
	i := 1
	for i < len(s) && s[i] != '[' && s[i] != ']' {
		i++
	}
	if i == len(s) || s[i] != ']' {
		return s, false
	}
	i++
	if i < len(s) && s[i] == ' ' {
		i++
	}
	return s[i:], true
}

// cutLeader removes one subj-leader. A leading space goes even when no
// "Re:" follows; blobs before a "Re" that is not there stay.
func cutLeader(s string) (rest string, found, replyOrForward bool) {
	if strings.HasPrefix(s, " ") {
		s = s[1:]
		found = true
	}
	p := s
	for strings.HasPrefix(p, "[") {
		var ok bool
		if p, ok = cutBlob(p); !ok {
			return s, found, false
		}
	}
	switch {
	case strings.HasPrefix(p, "RE"):
		p = p[2:]
	case strings.HasPrefix(p, "FWD"):
		p = p[3:]
	case strings.HasPrefix(p, "FW"):
		p = p[2:]
	default:
		return s, found, false
	}
	if strings.HasPrefix(p, " ") {
		p = p[1:]
	}
	if strings.HasPrefix(p, "[") {
		var ok bool
		if p, ok = cutBlob(p); !ok {
			return s, found, false
		}
	}
	if !strings.HasPrefix(p, ":") {
		return s, found, false
	}
	return p[1:], true, true
}
