package wire

import (
	"bytes"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// numSet reads a sequence-set, or "$" (RFC 5182 SEARCHRES, returned as
// imap.SearchRes()). uid selects the result type: imap.UIDSet or
// imap.SeqSet. Ranges are sorted and merged, so a hostile order costs
// O(n log n); their number is bounded by Limits.Tokens.
func (r *Reader) numSet(uid bool) (imap.NumSet, error) {
	if r.peek() == '$' {
		if err := r.token(); err != nil {
			return nil, err
		}
		r.pos++
		if c := r.peek(); c != ' ' && c != ')' && c != 0 {
			return nil, r.bad("Invalid sequence set at %q", r.near())
		}
		return imap.SearchRes(), nil
	}
	ranges, err := r.ranges()
	if err != nil {
		return nil, err
	}
	if uid {
		set := make(imap.UIDSet, 0, len(ranges))
		for _, rg := range ranges {
			set.AddRange(imap.UID(rg.Start), imap.UID(rg.Stop))
		}
		return set, nil
	}
	set := make(imap.SeqSet, 0, len(ranges))
	for _, rg := range ranges {
		set.AddRange(rg.Start, rg.Stop)
	}
	return set, nil
}

func (r *Reader) uidSet() (imap.UIDSet, error) {
	s, err := r.numSet(true)
	if err != nil {
		return nil, err
	}
	return s.(imap.UIDSet), nil
}

func (r *Reader) seqSet() (imap.SeqSet, error) {
	s, err := r.numSet(false)
	if err != nil {
		return nil, err
	}
	if imap.IsSearchRes(s) {
		return nil, r.bad("$ not allowed here")
	}
	return s.(imap.SeqSet), nil
}

// ranges reads the ranges of a sequence-set in ascending order of start,
// "*" (0) last, as imap's sets keep them.
func (r *Reader) ranges() ([]imap.SeqRange, error) {
	start := r.pos
	word := r.word(func(c byte) bool { return c == ':' || c == ',' || c == '*' || ('0' <= c && c <= '9') })
	if len(word) == 0 {
		if r.atEnd() {
			return nil, r.bad("Missing arguments")
		}
		return nil, r.bad("Expected a sequence set at %q", r.near())
	}
	if c := r.peek(); c != ' ' && c != ')' && !r.atEnd() {
		end := r.pos
		for end < len(r.buf) && r.buf[end] != ' ' && r.buf[end] != ')' {
			end++
		}
		return nil, r.bad("Invalid sequence set %q", r.buf[start:end])
	}
	var out []imap.SeqRange
	sorted := true
	for len(word) > 0 {
		if err := r.token(); err != nil {
			return nil, err
		}
		item := word
		if i := bytes.IndexByte(word, ','); i >= 0 {
			item, word = word[:i], word[i+1:]
			if len(word) == 0 {
				return nil, r.bad("Invalid sequence set: trailing ','")
			}
		} else {
			word = nil
		}
		a, b, ok := parseRange(item)
		if !ok {
			return nil, r.bad("Invalid sequence set %q", item)
		}
		rg := imap.SeqRange{Start: a, Stop: b}
		if (b < a && b != 0) || a == 0 {
			rg = imap.SeqRange{Start: b, Stop: a}
		}
		if n := len(out); n > 0 && rangeKey(out[n-1].Start) > rangeKey(rg.Start) {
			sorted = false
		}
		out = append(out, rg)
	}
	if !sorted {
		sort.SliceStable(out, func(i, j int) bool { return rangeKey(out[i].Start) < rangeKey(out[j].Start) })
	}
	return out, nil
}

func rangeKey(n uint32) uint64 {
	if n == 0 {
		return 1 << 32
	}
	return uint64(n)
}

// parseRange parses seq-number or seq-range; "*" is 0.
func parseRange(b []byte) (start, stop uint32, ok bool) {
	if i := bytes.IndexByte(b, ':'); i >= 0 {
		start, ok = parseSeqNum(b[:i])
		if !ok {
			return 0, 0, false
		}
		stop, ok = parseSeqNum(b[i+1:])
		return start, stop, ok
	}
	start, ok = parseSeqNum(b)
	return start, start, ok
}

// parseSeqNum parses nz-number or "*" (0).
func parseSeqNum(b []byte) (uint32, bool) {
	if len(b) == 1 && b[0] == '*' {
		return 0, true
	}
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n == 0 || n > 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}

// flag reads a flag: "\" atom (system flag or, in STORE/APPEND, an
// extension) or a keyword atom. System flags are given their canonical
// case.
func (r *Reader) flag(allowWildcard bool) (imap.Flag, error) {
	if r.peek() != '\\' {
		a, err := r.atom()
		return imap.Flag(a), err
	}
	r.pos++
	if allowWildcard && r.peek() == '*' {
		r.pos++
		return imap.FlagWildcard, r.token()
	}
	a, err := r.atomBytes()
	if err != nil {
		return "", err
	}
	return canonicalFlag("\\" + string(a)), nil
}

func canonicalFlag(f string) imap.Flag {
	for _, sys := range []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft, FlagRecent} {
		if strings.EqualFold(f, string(sys)) {
			return sys
		}
	}
	return imap.Flag(f)
}

// FlagRecent is IMAP4rev1's \Recent (RFC 3501), which imap no longer
// names: SEARCH RECENT, NEW and OLD become criteria on it.
const FlagRecent imap.Flag = "\\Recent"

// flagList reads "(" [flag *(SP flag)] ")".
func (r *Reader) flagList() ([]imap.Flag, error) {
	flags := []imap.Flag{}
	err := r.list(func() error {
		f, err := r.flag(false)
		flags = append(flags, f)
		return err
	})
	return flags, err
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// date reads a search date: date-text, possibly quoted, as midnight UTC.
func (r *Reader) date() (time.Time, error) {
	quoted := r.peek() == '"'
	var text []byte
	var err error
	if quoted {
		text, err = r.quoted()
	} else {
		if err = r.token(); err == nil {
			text = r.word(func(c byte) bool { return c == '-' || ('0' <= c && c <= '9') || ('a' <= c|0x20 && c|0x20 <= 'z') })
		}
	}
	if err != nil {
		return time.Time{}, err
	}
	t, ok := parseDate(string(text))
	if !ok {
		return time.Time{}, r.bad("Invalid date %q", text)
	}
	return t, nil
}

// parseDate parses date-text: d-Mon-yyyy or dd-Mon-yyyy.
func parseDate(s string) (time.Time, bool) {
	parts := strings.Split(s, "-")
	if len(parts) != 3 || len(parts[0]) < 1 || len(parts[0]) > 2 || len(parts[2]) != 4 {
		return time.Time{}, false
	}
	day, ok := atoiSmall(parts[0])
	year, ok2 := atoiSmall(parts[2])
	month := monthNumber(parts[1])
	if !ok || !ok2 || month == 0 || day < 1 || day > 31 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
	if t.Day() != day {
		return time.Time{}, false
	}
	return t, true
}

func monthNumber(s string) int {
	for i, m := range months {
		if strings.EqualFold(s, m) {
			return i + 1
		}
	}
	return 0
}

func atoiSmall(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// dateTime reads an APPEND date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (the
// day may be space-padded).
func (r *Reader) dateTime() (time.Time, error) {
	b, err := r.quoted()
	if err != nil {
		return time.Time{}, err
	}
	t, ok := parseDateTime(string(b))
	if !ok {
		return time.Time{}, r.bad("Invalid date-time %q", b)
	}
	return t, nil
}

func parseDateTime(s string) (time.Time, bool) {
	if len(s) != 26 || s[2] != '-' || s[6] != '-' || s[11] != ' ' || s[14] != ':' || s[17] != ':' || s[20] != ' ' {
		return time.Time{}, false
	}
	d, ok := parseDate(strings.TrimLeft(s[:11], " "))
	if !ok {
		return time.Time{}, false
	}
	hh, ok1 := atoiSmall(s[12:14])
	mm, ok2 := atoiSmall(s[15:17])
	ss, ok3 := atoiSmall(s[18:20])
	zh, ok4 := atoiSmall(s[22:24])
	zm, ok5 := atoiSmall(s[24:26])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || hh > 23 || mm > 59 || ss > 60 || zm > 59 || (s[21] != '+' && s[21] != '-') {
		return time.Time{}, false
	}
	off := (zh*60 + zm) * 60
	if s[21] == '-' {
		off = -off
	}
	loc := time.FixedZone("", off)
	return time.Date(d.Year(), d.Month(), d.Day(), hh, mm, ss, 0, loc), true
}
