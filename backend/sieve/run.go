package sieve

import (
	"context"
	"fmt"
	"html"
	"strconv"
	"strings"
	"time"
)

// run.go walks a compiled script for one message and collects the
// actions, merging duplicates and refusing conflicts the way RFC 5228
// section 4 and Pigeonhole do.

type runner struct {
	s   *Script
	ctx context.Context
	env Env
	msg *Message

	deadline time.Time
	work     int // spent so far, in rough steps (an octet compared)
	check    int // work at which to look at the clock next

	vars    map[string]string
	matches []string
	flags   string // imap4flags' internal variable

	actions   []Action
	cancelled bool // the implicit keep
	kept      bool // an explicit keep in the current script
	// vacationBefore: an earlier script of RunAll took a vacation action.
	vacationBefore bool
	redirects      int
	vacation       bool
	reject         int // index+1 of the reject action
}

// abort ends a run from deep inside a test; run recovers it.
type abort struct{ err *RuntimeError }

func (s *Script) run(ctx context.Context, env Env, msg *Message) (*Result, error) {
	return RunAll(ctx, []*Script{s}, env, msg)
}

// RunAll runs scripts one after the other as one delivery, the way
// Pigeonhole runs sieve_before scripts, the user's script and sieve_after
// scripts: their actions add up (duplicates merged, limits counted over
// all), the imap4flags flags carry on from one script to the next, while
// variables start afresh; stop ends only the script it is in. The next
// script runs only while the message is still kept (the implicit keep,
// or an explicit keep in the script just run); a fileinto, redirect,
// discard or reject that cancels the keep ends the sequence. Each script
// has its own implicit keep: the result's is the last script's. A later
// vacation after an earlier script's is dropped. A RuntimeError in any
// script gives the implicit keep alone, as for Run.
func RunAll(ctx context.Context, scripts []*Script, env Env, msg *Message) (res *Result, err error) {
	if env.Now.IsZero() {
		env.Now = time.Now()
	}
	if env.Location == nil {
		env.Location = time.Local
	}
	r := &runner{ctx: ctx, env: env, msg: msg}
	defer func() {
		if x := recover(); x != nil {
			a, ok := x.(abort)
			if !ok {
				panic(x)
			}
			res, err = &Result{ImplicitKeep: true}, a.err
		}
	}()
	for i, s := range scripts {
		// Each script has its own implicit keep, as in Pigeonhole.
		r.s, r.vars, r.matches, r.kept, r.cancelled = s, map[string]string{}, nil, false, false
		r.deadline = time.Now().Add(s.limits.MaxRunTime)
		r.check = r.work
		r.block(s.body)
		if i < len(scripts)-1 && r.cancelled && !r.kept {
			break
		}
		r.vacationBefore = r.vacationBefore || r.vacation
		r.vacation = false
	}
	res = &Result{Actions: r.actions, ImplicitKeep: !r.cancelled}
	if res.ImplicitKeep {
		res.KeepFlags = flagList(r.flags)
	}
	return res, nil
}

func (r *runner) fail(line int, format string, a ...any) {
	panic(abort{&RuntimeError{Line: line, Msg: fmt.Sprintf(format, a...)}})
}

// checkEvery is how much work passes between two looks at the clock.
const checkEvery = 1 << 16

// tick spends one step; spend spends n. Every checkEvery steps the run
// looks at its deadline and context, so a slow script (huge lists against
// a huge message) ends with an error soon after its time is up.
func (r *runner) tick() { r.spend(1) }

func (r *runner) spend(n int) {
	r.work += n
	if r.work < r.check {
		return
	}
	r.check = r.work + checkEvery
	if err := r.ctx.Err(); err != nil {
		r.fail(0, "run stopped: %v", err)
	}
	if time.Now().After(r.deadline) {
		r.fail(0, "run took longer than %v", r.s.limits.MaxRunTime)
	}
}

// block runs statements; false means stop.
func (r *runner) block(b []*stmt) bool {
	for _, st := range b {
		r.tick()
		if !r.exec(st) {
			return false
		}
	}
	return true
}

func (r *runner) exec(st *stmt) bool {
	switch st.op {
	case opIf:
		for i, b := range st.blocks {
			if i < len(st.conds) && !r.cond(st.conds[i]) {
				continue
			}
			return r.block(b)
		}
	case opStop:
		return false
	case opKeep:
		r.store(st, "INBOX", Keep)
		r.kept = true
	case opFileInto:
		r.store(st, r.expand(st.str), FileInto)
	case opDiscard:
		r.cancelled = true
		for _, a := range r.actions {
			if a.Kind == Discard {
				return true
			}
		}
		r.add(Action{Kind: Discard, Line: st.line})
	case opRedirect:
		r.redirect(st)
	case opReject, opEReject:
		kind := Reject
		if st.op == opEReject {
			kind = EReject
		}
		if r.reject > 0 {
			r.fail(st.line, "duplicate reject/ereject action not allowed")
		}
		for _, a := range r.actions {
			if a.Kind == Keep || a.Kind == FileInto || a.Kind == Redirect {
				r.fail(st.line, "reject/ereject conflicts with the %s action of line %d, which delivers the message", a.Kind, a.Line)
			}
		}
		r.cancelled = true
		r.add(Action{Kind: kind, Reason: r.expand(st.str), Line: st.line})
		r.reject = len(r.actions)
	case opSetFlag, opAddFlag, opRemoveFlag:
		cur := r.flags
		if st.name != "" {
			cur = r.vars[st.name]
		}
		arg := strings.Join(r.expandAll(st.flags), " ")
		switch st.op {
		case opSetFlag:
			cur = joinFlags(splitFlags(arg))
		case opAddFlag:
			cur = joinFlags(append(splitFlags(cur), splitFlags(arg)...))
		case opRemoveFlag:
			cur = joinFlags(removeFlags(splitFlags(cur), splitFlags(arg)))
		}
		if st.name != "" {
			r.vars[st.name] = truncate(cur, maxVariableSize)
		} else {
			r.flags = truncate(cur, maxVariableSize)
		}
	case opSet:
		r.vars[st.name] = truncate(applyModifiers(r.expand(st.str), st.mods), maxVariableSize)
	case opVacation:
		r.doVacation(st)
	}
	return true
}

func (r *runner) add(a Action) {
	n := 0
	for _, x := range r.actions {
		if x.Kind != Discard {
			n++
		}
	}
	if a.Kind != Discard && n+1 > r.s.limits.MaxActions {
		r.fail(a.Line, "more than %d actions", r.s.limits.MaxActions)
	}
	r.actions = append(r.actions, a)
}

// store adds keep or fileinto; a second store into the same mailbox
// merges into the first.
func (r *runner) store(st *stmt, mailbox string, kind ActionKind) {
	if r.reject > 0 {
		r.fail(st.line, "%s conflicts with the reject action of line %d", kind, r.actions[r.reject-1].Line)
	}
	var flags []string
	if st.hasFlags {
		flags = splitFlags(strings.Join(r.expandAll(st.flags), " "))
	} else {
		flags = splitFlags(r.flags)
	}
	flags = validFlags(flags)
	key := mailbox
	if strings.EqualFold(key, "INBOX") {
		key = "INBOX"
	}
	if !st.copy {
		r.cancelled = true
	}
	for i := range r.actions {
		a := &r.actions[i]
		if (a.Kind == Keep || a.Kind == FileInto) && a.mailboxKey() == key {
			a.Flags = joinFlagsList(append(a.Flags, flags...))
			a.Create = a.Create || st.create
			a.Copy = a.Copy && st.copy
			return
		}
	}
	a := Action{Kind: kind, Flags: flags, Create: st.create, Copy: st.copy, Line: st.line}
	if kind == FileInto {
		a.Mailbox = mailbox
	}
	r.add(a)
}

func (a *Action) mailboxKey() string {
	if a.Kind == Keep || strings.EqualFold(a.Mailbox, "INBOX") {
		return "INBOX"
	}
	return a.Mailbox
}

func (r *runner) redirect(st *stmt) {
	if r.reject > 0 {
		r.fail(st.line, "redirect conflicts with the reject action of line %d", r.actions[r.reject-1].Line)
	}
	raw := r.expand(st.str)
	addr, ok := parseAddrSpec(raw)
	if !ok {
		r.fail(st.line, "redirect: %q is not a valid address", raw)
	}
	// The domain is case-insensitive, the local part is not (RFC 5321
	// section 2.4): Pigeonhole lower-cases the one and keeps the other.
	to := addr.local + "@" + strings.ToLower(addr.domain)
	if !st.copy {
		r.cancelled = true
	}
	for i := range r.actions {
		a := &r.actions[i]
		if a.Kind == Redirect && a.Address == to {
			a.Copy = a.Copy && st.copy
			return
		}
	}
	r.redirects++
	if r.redirects > r.s.limits.MaxRedirects {
		r.fail(st.line, "more than %d redirects", r.s.limits.MaxRedirects)
	}
	r.add(Action{Kind: Redirect, Address: to, Copy: st.copy, Line: st.line})
}

func (r *runner) doVacation(st *stmt) {
	if r.vacationBefore {
		// An earlier script of the sequence replied: every vacation
		// here is a no-op, a second one no error (as in Pigeonhole).
		return
	}
	if r.vacation {
		r.fail(st.line, "duplicate vacation action not allowed")
	}
	r.vacation = true
	v := st.vac
	p := &VacationParams{Reason: r.expand(st.str), Mime: v.mime, Period: v.period,
		Requested: v.requested, HasPeriod: v.hasPeriod}
	if v.hasSubj {
		p.Subject = r.expand(v.subject)
	}
	if v.hasFrom {
		p.From = r.expand(v.from)
		if _, ok := parseAddressLoose(p.From); !ok {
			r.fail(st.line, "vacation: :from %q is not a valid address", p.From)
		}
	}
	p.Addresses = r.expandAll(v.addresses)
	if v.hasHandle {
		p.Handle = r.expand(v.handle)
	} else {
		p.Handle = defaultHandle(p, v.hasSubj, v.hasFrom)
	}
	r.add(Action{Kind: Vacation, Vacation: p, Line: st.line})
}

func (r *runner) cond(c *cond) bool {
	r.tick()
	switch c.kind {
	case tTrue:
		return true
	case tFalse:
		return false
	case tNot:
		return !r.cond(c.tests[0])
	case tAllOf:
		for _, t := range c.tests {
			if !r.cond(t) {
				return false
			}
		}
		return true
	case tAnyOf:
		for _, t := range c.tests {
			if r.cond(t) {
				return true
			}
		}
		return false
	case tHeader:
		var values []string
		for _, h := range r.expandAll(c.headers) {
			for _, v := range pickIndex(header(r.msg.fields, h), c.index, c.last) {
				values = append(values, decodeHeader(v))
			}
		}
		return r.test(c.match, values, r.expandAll(c.keys))
	case tAddress:
		var values []string
		var raws []string
		for _, h := range r.expandAll(c.headers) {
			for _, v := range pickIndex(header(r.msg.fields, h), c.index, c.last) {
				addrs, raw := headerAddresses(v)
				for _, a := range addrs {
					if s, ok := addressPart(a, c.part, r.env.SubaddressSeparator); ok {
						values = append(values, s)
					}
				}
				raws = append(raws, raw...)
			}
		}
		if c.match.typ == matchCount {
			values = append(values, raws...)
		} else if c.part == partAll {
			values = append(values, raws...)
		}
		return r.test(c.match, values, r.expandAll(c.keys))
	case tEnvelope:
		var values []string
		for _, h := range r.expandAll(c.headers) {
			var v string
			switch strings.ToLower(h) {
			case "from":
				v = r.env.From
			case "to":
				v = r.env.To
			default:
				continue
			}
			if v == "" {
				// The null sender <> has no parts; :all sees "".
				if c.part == partAll || c.match.typ == matchCount {
					values = append(values, "")
				}
				continue
			}
			a, ok := parseAddrSpec(v)
			if !ok {
				values = append(values, v)
				continue
			}
			if s, ok := addressPart(a, c.part, r.env.SubaddressSeparator); ok {
				values = append(values, s)
			}
		}
		return r.test(c.match, values, r.expandAll(c.keys))
	case tExists:
		for _, h := range r.expandAll(c.headers) {
			if len(header(r.msg.fields, h)) == 0 {
				return false
			}
		}
		return true
	case tSize:
		if c.over {
			return r.msg.Size() > c.size
		}
		return r.msg.Size() < c.size
	case tBody:
		return r.test(c.match, r.bodyValues(c), r.expandAll(c.keys))
	case tString:
		values := r.expandAll(c.headers)
		if c.match.typ == matchCount {
			var nonEmpty []string
			for _, v := range values {
				if v != "" {
					nonEmpty = append(nonEmpty, v)
				}
			}
			values = nonEmpty
		}
		return r.test(c.match, values, r.expandAll(c.keys))
	case tDate, tCurrentDate:
		return r.test(c.match, r.dateValues(c), r.expandAll(c.keys))
	case tHasFlag:
		var flags []string
		if c.vars == nil {
			flags = splitFlags(r.flags)
		} else {
			for _, name := range r.expandAll(c.vars) {
				flags = append(flags, splitFlags(r.vars[strings.ToLower(name)])...)
			}
		}
		var keys []string
		for _, k := range r.expandAll(c.keys) {
			keys = append(keys, splitFlags(k)...)
		}
		return r.test(c.match, flags, keys)
	case tMailboxExists:
		for _, mb := range r.expandAll(c.keys) {
			if !r.mailboxExists(mb) {
				return false
			}
		}
		return true
	case tSpamTest, tVirusTest:
		v := r.env.Spam
		if c.kind == tVirusTest {
			v = r.env.Virus
		}
		val := "0"
		if v.Tested {
			val = strconv.Itoa(v.Value)
			if c.percent {
				val = strconv.Itoa(v.Percent)
			}
		}
		return r.test(c.match, []string{val}, r.expandAll(c.keys))
	}
	return false
}

func (r *runner) mailboxExists(name string) bool {
	if r.env.MailboxExists != nil {
		return r.env.MailboxExists(name)
	}
	return strings.EqualFold(name, "INBOX")
}

// pickIndex applies :index (1-based, from the end with :last).
func pickIndex(vs []string, index int, last bool) []string {
	if index == 0 {
		return vs
	}
	if index > len(vs) {
		return nil
	}
	if last {
		return vs[len(vs)-index : len(vs)-index+1]
	}
	return vs[index-1 : index]
}

func (r *runner) dateValues(c *cond) []string {
	loc := r.env.Location
	if c.zone != "" {
		loc, _ = parseZone(c.zone)
	}
	if c.kind == tCurrentDate {
		if !datePartKnown(c.datePart) {
			return nil
		}
		return []string{datePart(r.env.Now.In(loc), c.datePart)}
	}
	var out []string
	for _, h := range r.expandAll(c.headers) {
		for _, v := range pickIndex(header(r.msg.fields, h), c.index, c.last) {
			t, ok := headerDate(h, v)
			if !ok || !datePartKnown(c.datePart) {
				continue
			}
			if !c.origZone {
				t = t.In(loc)
			}
			out = append(out, datePart(t, c.datePart))
		}
	}
	return out
}

// bodyValues are the texts the body test matches (RFC 5173).
func (r *runner) bodyValues(c *cond) []string {
	switch c.transform {
	case bodyRaw:
		return []string{string(r.msg.body)}
	case bodyContent:
		var out []string
		for _, p := range r.msg.bodyParts() {
			if contentTypeMatches(p.mediaType, c.types) {
				out = append(out, p.text)
			}
		}
		return out
	}
	var out []string
	for _, p := range r.msg.bodyParts() {
		switch {
		case p.mediaType == "text/html":
			out = append(out, htmlText(p.text))
		case strings.HasPrefix(p.mediaType, "text/"):
			out = append(out, p.text)
		}
	}
	return out
}

// contentTypeMatches applies body :content's type list: "" is every
// part, "type" every subtype of type, "type/subtype" exactly that.
func contentTypeMatches(mt string, types []string) bool {
	for _, t := range types {
		t = strings.ToLower(t)
		if t == "" {
			return true
		}
		if strings.Contains(t, "/") {
			if mt == t {
				return true
			}
			continue
		}
		if major, _, _ := strings.Cut(mt, "/"); major == t {
			return true
		}
	}
	return false
}

// defaultHandle names a vacation reply the script gave no :handle, from
// what makes it a different reply; the same text as Pigeonhole's, so
// replies recorded by it are recognised.
func defaultHandle(p *VacationParams, hasSubj, hasFrom bool) string {
	h := p.Reason
	if hasSubj {
		h += p.Subject
	} else {
		h += "<default-subject>"
	}
	if hasFrom {
		h += p.From
	} else {
		h += "<default-from>"
	}
	if p.Mime {
		return h + "<MIME>"
	}
	return h + "<NO-MIME>"
}

// htmlText is the text of an HTML part for body :text: tags dropped,
// the common entities decoded.
func htmlText(h string) string {
	var b strings.Builder
	for i := 0; i < len(h); i++ {
		if h[i] == '<' {
			end := strings.IndexByte(h[i:], '>')
			if end < 0 {
				break
			}
			i += end
			continue
		}
		b.WriteByte(h[i])
	}
	return html.UnescapeString(b.String())
}
