package imap

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	goimap "github.com/emersion/go-imap/v2"

	"github.com/vmaild/vmaild/backend/store"
	"github.com/vmaild/vmaild/protocols/imap/utf7"
	"github.com/vmaild/vmaild/protocols/imap/wire"
)

// Mailbox names and LIST (RFC 3501 6.3.8 and 6.3.9, RFC 5258
// LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE).
//
// The store names folders in UTF-8 with "/" between levels ("Entwürfe",
// "Archive/2024"; it writes them to disk in modified UTF-7 itself, as
// Dovecot's Maildir++ does). Clients name them in modified UTF-7 unless
// they enabled UTF8=ACCEPT. mailboxName and clientName are the only
// crossings between the two; patterns are decoded the same way before
// they are matched against the store's names.
//
// What LIST answers follows Dovecot 2.3 (the oracle of list_test.go),
// including where RFC 5258 leaves room:
//
//   - The base syntax returns \HasChildren or \HasNoChildren, special-use
//     attributes and \Noselect for a level that is no mailbox; the
//     extended syntax (wire.List.Extended) returns only what the client
//     asked for, says \NonExistent instead of \Noselect, and treats ""
//     as an ordinary pattern, not the request for the delimiter.
//   - With SUBSCRIBED (and LSUB), the subscriptions are listed, whether
//     the folders exist or not. With RECURSIVEMATCH (and LSUB whose
//     pattern ends in "%"), a subscribed name that does not match brings
//     in its nearest matching ancestor, with CHILDINFO ("SUBSCRIBED")
//     (LSUB: \Noselect unless it is subscribed itself); every matching
//     ancestor of a subscribed name that is listed anyway gets CHILDINFO.
//   - INBOX comes first, then the names in hierarchy order (a folder's
//     children right after it). Dovecot lists in directory order.

// listDelim is the hierarchy delimiter as LIST reports it.
const listDelim = '/'

// mailboxName turns a client's mailbox argument into the store's name
// (modified UTF-7 decoded unless utf8; INBOX case-insensitive); an error
// is an *imap.Error BAD/NO to answer.
func mailboxName(arg string, utf8 bool) (string, error) {
	name := arg
	if utf8 {
		if !validUTF8(arg) {
			return "", bad("Mailbox name is not valid UTF-8")
		}
	} else {
		d, err := utf7.Decode(arg)
		if err != nil {
			// Dovecot's answer, word for word.
			return "", no("", "Mailbox name is not valid mUTF-7")
		}
		name = d
	}
	if inboxPrefixFold(name) {
		name = store.Inbox + name[len(store.Inbox):]
	}
	return name, nil
}

func validUTF8(s string) bool { return utf8.ValidString(s) }

// inboxPrefixFold reports whether name is INBOX or one of its children,
// in any case.
func inboxPrefixFold(name string) bool {
	n := len(store.Inbox)
	return len(name) >= n && strings.EqualFold(name[:n], store.Inbox) && (len(name) == n || name[n] == listDelim)
}

// clientName is the reverse, for LIST/STATUS/etc. responses.
func clientName(name string, utf8 bool) string {
	if utf8 || plainASCII(name) {
		return name
	}
	s, err := utf7.Encode(name)
	if err != nil {
		// The store's names are UTF-8; should one not be, the client
		// still gets a name it can parse.
		s, _ = utf7.Encode(strings.ToValidUTF8(name, "\uFFFD"))
	}
	return s
}

// plainASCII reports whether name is its own modified UTF-7 spelling.
func plainASCII(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c > 0x7e || c == '&' {
			return false
		}
	}
	return true
}

// matchList reports whether name matches ref+pattern (RFC 3501 6.3.8: "*" and "%", delimiter '/').
func matchList(name, ref, pattern string) bool {
	return compilePattern(ref + pattern).match(name)
}

// listPattern is a reference and pattern compiled for matching many
// names. Runs of wildcards are collapsed ("**", "%*" and "*%" are "*",
// "%%" is "%"), so a pattern of any number of wildcards costs one.
// Patterns with one kind of wildcard are matched exactly by looking for
// their literal runs in order (per level for "%"); the others, and names
// under INBOX, whose first five octets match in any case, by running all
// positions of the pattern at once (a bit-parallel NFA, after cheap
// tests that most names fail): time len(name) × len(pattern)/64 at
// worst, no backtracking, however the pattern is built. A listPattern is
// for one goroutine.
type listPattern struct {
	toks     []byte // literal octets; '*' and '%' are wildcards
	lit      string // toks as a string
	literals int    // literal octets: a shorter name cannot match
	slashes  int    // literal delimiters: a name needs as many, at least
	kind     patternKind
	runs     []string   // literal runs between wildcards (starOnly, mixed)
	levels   [][]string // per level, the runs between '%' (percentOnly)

	// The NFA: masks[index[c]] has bit i set where toks[i] is the
	// literal c (masks[0] is empty); star and wild mark the positions
	// of '*', and of '*' and '%'; cur and next are scratch state sets.
	words      int
	index      [256]uint8
	masks      [][]uint64
	star, wild []uint64
	cur, next  []uint64
}

type patternKind uint8

const (
	exactPattern patternKind = iota // no wildcard
	anyPattern                      // "*" alone
	starOnly
	percentOnly
	mixedPattern
)

func compilePattern(p string) *listPattern {
	lp := &listPattern{toks: make([]byte, 0, len(p))}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '*' && c != '%' {
			lp.toks = append(lp.toks, c)
			lp.literals++
			if c == listDelim {
				lp.slashes++
			}
			continue
		}
		if n := len(lp.toks); n > 0 && (lp.toks[n-1] == '*' || lp.toks[n-1] == '%') {
			if c == '*' {
				lp.toks[n-1] = '*'
			}
			continue
		}
		lp.toks = append(lp.toks, c)
	}
	lp.lit = string(lp.toks)
	stars, percents := strings.Contains(lp.lit, "*"), strings.Contains(lp.lit, "%")
	switch {
	case lp.lit == "*":
		lp.kind = anyPattern
	case !stars && !percents:
		lp.kind = exactPattern
	case !percents:
		lp.kind = starOnly
		lp.runs = strings.Split(lp.lit, "*")
	case !stars:
		lp.kind = percentOnly
		for _, level := range strings.Split(lp.lit, string(listDelim)) {
			lp.levels = append(lp.levels, strings.Split(level, "%"))
		}
	default:
		lp.kind = mixedPattern
		lp.runs = strings.FieldsFunc(lp.lit, func(r rune) bool { return r == '*' || r == '%' })
	}
	lp.compileNFA()
	return lp
}

func (lp *listPattern) compileNFA() {
	n := len(lp.toks) + 1 // states: 0..len(toks), the last accepts
	lp.words = (n + 63) / 64
	lp.star = make([]uint64, lp.words)
	lp.wild = make([]uint64, lp.words)
	lp.cur = make([]uint64, lp.words)
	lp.next = make([]uint64, lp.words)
	lp.masks = [][]uint64{make([]uint64, lp.words)}
	for i, c := range lp.toks {
		w, b := i/64, uint64(1)<<(i%64)
		switch c {
		case '*':
			lp.star[w] |= b
			lp.wild[w] |= b
		case '%':
			lp.wild[w] |= b
		default:
			if lp.index[c] == 0 {
				lp.index[c] = uint8(len(lp.masks))
				lp.masks = append(lp.masks, make([]uint64, lp.words))
			}
			lp.masks[lp.index[c]][w] |= b
		}
	}
}

// match reports whether name matches. The first five octets of a name
// that is INBOX or under it match in any case, as INBOX is
// case-insensitive (Dovecot: "inb%" lists INBOX).
func (lp *listPattern) match(name string) bool {
	if lp.kind == anyPattern {
		return true
	}
	if lp.literals > len(name) {
		return false
	}
	fold := 0
	if name == store.Inbox || strings.HasPrefix(name, store.Inbox+"/") {
		fold = len(store.Inbox)
	}
	switch {
	case lp.kind == exactPattern:
		return len(name) == len(lp.lit) && strings.EqualFold(name[:fold], lp.lit[:fold]) && name[fold:] == lp.lit[fold:]
	case fold > 0:
		return lp.matchNFA(name, fold)
	case lp.kind == starOnly:
		return globRuns(name, lp.runs)
	case lp.kind == percentOnly:
		return lp.matchLevels(name)
	}
	// Mixed: what the name must have before the NFA has a look.
	if strings.Count(name, string(listDelim)) < lp.slashes {
		return false
	}
	if lp.toks[0] != '*' && lp.toks[0] != '%' && !strings.HasPrefix(name, lp.runs[0]) {
		return false
	}
	if last := lp.toks[len(lp.toks)-1]; last != '*' && last != '%' && !strings.HasSuffix(name, lp.runs[len(lp.runs)-1]) {
		return false
	}
	return lp.matchNFA(name, 0)
}

// globRuns matches s against literal runs separated by one kind of
// wildcard that matches anything in s: the first run is a prefix, the
// last a suffix, the others are found in order, leftmost first (which
// never misses a match).
func globRuns(s string, runs []string) bool {
	if len(runs) == 1 {
		return s == runs[0]
	}
	first, last := runs[0], runs[len(runs)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	s = s[len(first) : len(s)-len(last)]
	for _, r := range runs[1 : len(runs)-1] {
		i := strings.Index(s, r)
		if i < 0 {
			return false
		}
		s = s[i+len(r):]
	}
	return true
}

// matchLevels matches a pattern whose wildcards are all '%': level by
// level, as '%' never crosses a delimiter.
func (lp *listPattern) matchLevels(name string) bool {
	for k, runs := range lp.levels {
		part := name
		if k < len(lp.levels)-1 {
			i := strings.IndexByte(name, listDelim)
			if i < 0 {
				return false
			}
			part, name = name[:i], name[i+1:]
		} else if strings.IndexByte(name, listDelim) >= 0 {
			return false
		}
		if !globRuns(part, runs) {
			return false
		}
	}
	return true
}

// matchNFA runs the NFA over name, the first fold octets in any case.
func (lp *listPattern) matchNFA(name string, fold int) bool {
	cur, next := lp.cur, lp.next
	clear(cur)
	cur[0] = 1
	lp.closure(cur)
	for i := 0; i < len(name); i++ {
		c := name[i]
		lit := lp.masks[lp.index[c]]
		var alt []uint64
		if i < fold {
			alt = lp.masks[lp.index[swapCase(c)]]
		}
		stay := lp.wild
		if c == listDelim {
			stay = lp.star
		}
		var carry, any uint64
		for w := range cur {
			adv := cur[w] & lit[w]
			if alt != nil {
				adv |= cur[w] & alt[w]
			}
			next[w] = adv<<1 | carry | cur[w]&stay[w]
			carry = adv >> 63
			any |= next[w]
		}
		if any == 0 {
			return false
		}
		lp.closure(next)
		cur, next = next, cur
	}
	last := len(lp.toks)
	return cur[last/64]&(1<<(last%64)) != 0
}

// closure lets every active wildcard match the empty string: its
// position's successor becomes active too. Wildcards never follow each
// other after compilePattern, so one step is enough.
func (lp *listPattern) closure(s []uint64) {
	var carry uint64
	for w := range s {
		add := s[w] & lp.wild[w]
		s[w] |= add<<1 | carry
		carry = add >> 63
	}
}

func swapCase(c byte) byte {
	switch {
	case 'a' <= c && c <= 'z':
		return c - 'a' + 'A'
	case 'A' <= c && c <= 'Z':
		return c - 'A' + 'a'
	}
	return c
}

// listEntry is one name LIST may return, with what is known about it.
type listEntry struct {
	name       string
	exists     bool // a mailbox, not a level without one or a name only subscribed
	children   bool
	special    string
	subscribed bool
	childSub   bool // a subscribed descendant brought it in or stands behind it
}

// listMailboxes answers LIST or LSUB (cmd.LSUB): folders and subs are
// what store.Mailbox.ListFolders and Subscriptions return. Names in the
// result are in the client's encoding (modified UTF-7 via package
// protocols/imap/utf7 unless utf8, i.e. UTF8=ACCEPT enabled). The
// caller adds STATUS for RETURN (STATUS ...) to entries that are selectable.
func listMailboxes(folders []store.FolderInfo, subs []string, cmd *wire.List, utf8 bool) []goimap.ListData {
	opts := &cmd.Options
	if !cmd.LSUB && !cmd.Extended && len(cmd.Patterns) == 1 && cmd.Patterns[0] == "" {
		// The delimiter and the root of the reference (RFC 3501:
		// the reference up to its first level, already in the
		// client's encoding).
		root := ""
		if i := strings.IndexByte(cmd.Ref, listDelim); i >= 0 {
			root = cmd.Ref[:i+1]
		}
		return []goimap.ListData{{Attrs: []goimap.MailboxAttr{goimap.MailboxAttrNoSelect}, Delim: listDelim, Mailbox: root}}
	}
	pats := make([]*listPattern, 0, len(cmd.Patterns))
	for _, p := range cmd.Patterns {
		full := cmd.Ref + p
		if !utf8 {
			// A pattern that is no modified UTF-7 is matched as it
			// is, as Dovecot does ("a&b" finds the folder "a&b").
			if d, err := utf7.Decode(full); err == nil {
				full = d
			}
		}
		pats = append(pats, compilePattern(full))
	}
	match := func(name string) bool {
		for _, p := range pats {
			if p.match(name) {
				return true
			}
		}
		return false
	}

	var entries []listEntry
	if cmd.LSUB || opts.SelectSubscribed {
		last := ""
		if len(cmd.Patterns) > 0 {
			last = cmd.Patterns[len(cmd.Patterns)-1]
		}
		parents := opts.SelectRecursiveMatch || (cmd.LSUB && strings.HasSuffix(last, "%"))
		entries = subscribedEntries(folders, subs, match, parents)
	} else {
		var subscribed map[string]bool
		if opts.ReturnSubscribed {
			subscribed = make(map[string]bool, len(subs))
			for _, s := range subs {
				subscribed[s] = true
			}
		}
		// Indices first, so that the entries are allocated once.
		var matched []int
		for i := range folders {
			if match(folders[i].Name) {
				matched = append(matched, i)
			}
		}
		entries = make([]listEntry, len(matched))
		for k, i := range matched {
			entries[k] = folderEntry(&folders[i])
			entries[k].subscribed = subscribed[folders[i].Name]
		}
	}
	if opts.SelectSpecialUse {
		entries = slices.DeleteFunc(entries, func(e listEntry) bool { return e.special == "" })
	}
	slices.SortFunc(entries, func(a, b listEntry) int { return compareListNames(a.name, b.name) })

	ext := cmd.Extended
	retChildren := (!ext && !cmd.LSUB) || opts.ReturnChildren
	retSubscribed := opts.ReturnSubscribed || opts.SelectSubscribed
	retSpecial := !ext || opts.ReturnSpecialUse || opts.SelectSpecialUse
	out := make([]goimap.ListData, 0, len(entries))
	// One array holds every entry's attributes (four at most).
	attrs := make([]goimap.MailboxAttr, 0, 4*len(entries))
	for i := range entries {
		e := &entries[i]
		d := goimap.ListData{Delim: listDelim, Mailbox: clientName(e.name, utf8)}
		d.Attrs = attrs[len(attrs) : len(attrs) : len(attrs)+4]
		if retSubscribed && e.subscribed {
			d.Attrs = append(d.Attrs, goimap.MailboxAttrSubscribed)
		}
		switch {
		case !e.exists && ext:
			d.Attrs = append(d.Attrs, goimap.MailboxAttrNonExistent)
		case !e.exists && !cmd.LSUB, !ext && e.childSub && !e.subscribed:
			// A level without a mailbox in the base syntax, and
			// LSUB's parent of a subscribed child. LSUB lists a
			// subscribed name without a mailbox as it is.
			d.Attrs = append(d.Attrs, goimap.MailboxAttrNoSelect)
		}
		if retChildren {
			if e.children {
				d.Attrs = append(d.Attrs, goimap.MailboxAttrHasChildren)
			} else {
				d.Attrs = append(d.Attrs, goimap.MailboxAttrHasNoChildren)
			}
		}
		if retSpecial && e.special != "" {
			d.Attrs = append(d.Attrs, goimap.MailboxAttr(e.special))
		}
		if ext && e.childSub {
			d.ChildInfo = &goimap.ListDataChildInfo{Subscribed: true}
		}
		attrs = attrs[:len(attrs)+len(d.Attrs)]
		if len(d.Attrs) == 0 {
			d.Attrs = nil
		}
		out = append(out, d)
	}
	return out
}

// maxListPatterns bounds the patterns of one LIST. Clients send one to
// three; matching costs names × patterns, and a pattern that passes the
// cheap tests costs up to a microsecond per long name, so 20,000
// patterns (what wire's token limit lets through) over 10,000 folders
// would keep a core busy for minutes.
const maxListPatterns = 32

// checkList refuses what listMailboxes should not be asked: more
// patterns than maxListPatterns. The session calls it first.
func checkList(cmd *wire.List) error {
	if len(cmd.Patterns) > maxListPatterns {
		return no(goimap.ResponseCodeLimit, fmt.Sprintf("At most %d LIST patterns", maxListPatterns))
	}
	return nil
}

// listWantsStatus says whether a LIST-STATUS answer gets a STATUS for d:
// a selectable mailbox that is listed for itself, not only as the parent
// of a subscribed one (as Dovecot decides).
func listWantsStatus(d *goimap.ListData) bool {
	subscribed := false
	for _, a := range d.Attrs {
		switch a {
		case goimap.MailboxAttrNoSelect, goimap.MailboxAttrNonExistent:
			return false
		case goimap.MailboxAttrSubscribed:
			subscribed = true
		}
	}
	return d.ChildInfo == nil || subscribed
}

func folderEntry(fi *store.FolderInfo) listEntry {
	e := listEntry{name: fi.Name, exists: true, special: fi.SpecialUse}
	for _, a := range fi.Attrs {
		switch {
		case strings.EqualFold(a, string(goimap.MailboxAttrNoSelect)):
			e.exists = false
		case strings.EqualFold(a, string(goimap.MailboxAttrHasChildren)):
			e.children = true
		}
	}
	return e
}

// subscribedEntries lists by subscriptions (SUBSCRIBED, LSUB). A
// subscribed name that matches is listed; with parents (RECURSIVEMATCH),
// its ancestors that match learn that they have a subscribed child, and
// when the name itself does not match, the nearest matching ancestor is
// listed for it.
func subscribedEntries(folders []store.FolderInfo, subs []string, match func(string) bool, parents bool) []listEntry {
	known := make(map[string]*store.FolderInfo, len(folders))
	for i := range folders {
		known[folders[i].Name] = &folders[i]
	}
	nodes := map[string]*listEntry{}
	listed := map[string]bool{}
	node := func(name string) *listEntry {
		if e := nodes[name]; e != nil {
			return e
		}
		e := listEntry{name: name}
		if fi := known[name]; fi != nil {
			e = folderEntry(fi)
		}
		nodes[name] = &e
		return &e
	}
	for _, s := range subs {
		name, first, list := s, true, true
		for {
			if match(name) {
				e := node(name)
				if first {
					e.subscribed = true
				} else {
					e.childSub, e.children = true, true
				}
				if list {
					listed[name] = true
					list = false
				}
			}
			i := strings.LastIndexByte(name, listDelim)
			if !parents || i < 0 {
				break
			}
			name, first = name[:i], false
		}
	}
	out := make([]listEntry, 0, len(listed))
	for name := range listed {
		out = append(out, *nodes[name])
	}
	return out
}

// compareListNames orders INBOX and its children first, then the rest
// in hierarchy order: the delimiter sorts before every other octet, so a
// folder's children follow it directly ("a", "a/b", "a b").
func compareListNames(a, b string) int {
	if ai, bi := inboxPrefixFold(a), inboxPrefixFold(b); ai != bi {
		if ai {
			return -1
		}
		return 1
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := a[i], b[i]
		switch {
		case ca == cb:
			continue
		case ca == listDelim:
			return -1
		case cb == listDelim:
			return 1
		case ca < cb:
			return -1
		default:
			return 1
		}
	}
	return len(a) - len(b)
}
