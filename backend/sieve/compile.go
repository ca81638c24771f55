package sieve

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// compile.go checks the parsed commands against what each command and
// test accepts, and turns them into the typed tree run.go walks. Every
// check that does not depend on the message happens here, so a script that
// compiles fails at run time only for limits and action conflicts.

// extensions are the capabilities require accepts.
var extensions = map[string]bool{
	"fileinto": true, "reject": true, "ereject": true, "envelope": true,
	"imap4flags": true, "body": true, "variables": true, "vacation": true,
	"vacation-seconds": true, "copy": true, "relational": true,
	"subaddress": true, "date": true, "index": true, "mailbox": true,
	"spamtest": true, "spamtestplus": true, "virustest": true,
	"comparator-i;octet": true, "comparator-i;ascii-casemap": true,
	"comparator-i;ascii-numeric": true,
}

// Extensions lists the capabilities this interpreter supports, for
// ManageSieve's SIEVE capability.
func Extensions() []string {
	return []string{"fileinto", "reject", "ereject", "envelope", "imap4flags",
		"body", "variables", "vacation", "vacation-seconds", "copy",
		"relational", "subaddress", "date", "index", "mailbox", "spamtest",
		"spamtestplus", "virustest", "comparator-i;ascii-numeric"}
}

// addressHeaders are the fields the address test accepts, Pigeonhole's
// list: fields defined (or commonly used) to hold addresses.
var addressHeaders = map[string]bool{
	"from": true, "to": true, "cc": true, "bcc": true, "sender": true,
	"resent-from": true, "resent-to": true, "reply-to": true,
	"resent-reply-to": true, "resent-sender": true, "resent-cc": true,
	"resent-bcc": true, "for-approval": true, "for-handling": true,
	"for-comment": true, "apparently-to": true, "errors-to": true,
	"delivered-to": true, "return-receipt-to": true, "x-admin": true,
	"read-receipt-to": true, "x-confirm-reading-to": true,
	"return-receipt-requested":           true,
	"registered-mail-reply-requested-by": true, "mail-followup-to": true,
	"mail-reply-to": true, "abuse-reports-to": true, "x-complaints-to": true,
	"x-report-abuse-to": true, "x-beenthere": true, "x-original-to": true,
}

// Default vacation periods, Pigeonhole's: a reply at most once a day
// whatever the script says, once a week when it says nothing.
const (
	vacationMinPeriod     = 24 * time.Hour
	vacationDefaultPeriod = 7 * 24 * time.Hour
)

// commands are the action and control command names (if, elsif, else
// and require are handled before).
var commands = map[string]bool{
	"stop": true, "keep": true, "discard": true, "redirect": true,
	"fileinto": true, "reject": true, "ereject": true, "setflag": true,
	"addflag": true, "removeflag": true, "set": true, "vacation": true,
}

type opcode int

const (
	opIf opcode = iota + 1
	opStop
	opKeep
	opDiscard
	opRedirect
	opFileInto
	opReject
	opEReject
	opSetFlag
	opAddFlag
	opRemoveFlag
	opSet
	opVacation
)

// stmt is one compiled command.
type stmt struct {
	op   opcode
	line int
	// if: conds[i] guards blocks[i]; a last block without cond is else.
	conds  []*cond
	blocks [][]*stmt
	// arguments of actions
	str      tmpl   // redirect address, fileinto mailbox, reject reason, vacation reason, set value
	name     string // set / flag commands' variable name ("" for the internal one)
	flags    []tmpl
	hasFlags bool
	copy     bool
	create   bool
	mods     []string // set modifiers in application order
	vac      *vacationArgs
}

type vacationArgs struct {
	period           time.Duration
	requested        time.Duration // :days or :seconds as given
	hasPeriod        bool
	subject, from    tmpl
	hasSubj, hasFrom bool
	addresses        []tmpl
	mime             bool
	handle           tmpl
	hasHandle        bool
}

type testKind int

const (
	tTrue testKind = iota + 1
	tFalse
	tNot
	tAllOf
	tAnyOf
	tAddress
	tHeader
	tEnvelope
	tExists
	tSize
	tBody
	tString
	tDate
	tCurrentDate
	tHasFlag
	tMailboxExists
	tSpamTest
	tVirusTest
)

// cond is one compiled test.
type cond struct {
	kind  testKind
	line  int
	tests []*cond
	// match parameters
	match     matcher
	part      addrPart
	index     int // 1-based :index, 0 none
	last      bool
	headers   []tmpl
	keys      []tmpl
	over      bool // size :over (else :under)
	size      int64
	transform bodyTransform
	types     []string // body :content types
	zone      string   // date :zone ("" with originalZone false: local)
	origZone  bool
	datePart  string
	percent   bool
	vars      []tmpl // hasflag variable list
}

type addrPart int

const (
	partAll addrPart = iota
	partLocal
	partDomain
	partUser
	partDetail
)

type bodyTransform int

const (
	bodyText bodyTransform = iota
	bodyRaw
	bodyContent
)

type compiler struct {
	exts    map[string]bool
	allowed map[string]bool
	vars    bool
}

func compile(src []byte, opts Options) (*Script, error) {
	l := opts.Limits.withDefaults()
	if len(src) > l.MaxScriptSize {
		return nil, &Error{Msg: fmt.Sprintf("script of %d bytes is larger than the limit of %d bytes", len(src), l.MaxScriptSize)}
	}
	if !utf8.Valid(src) {
		return nil, &Error{Line: badUTF8Line(src), Msg: "script is not valid UTF-8"}
	}
	cmds, err := parse(src, l)
	if err != nil {
		return nil, err
	}
	c := &compiler{exts: map[string]bool{}}
	if opts.Extensions != nil {
		c.allowed = map[string]bool{}
		for _, e := range opts.Extensions {
			c.allowed[strings.ToLower(e)] = true
		}
	}
	s := &Script{limits: l, exts: c.exts}
	// require commands come first (RFC 5228 section 3.2).
	i := 0
	for ; i < len(cmds) && cmds[i].name == "require"; i++ {
		reqs, err := c.require(cmds[i])
		if err != nil {
			return nil, err
		}
		s.requires = append(s.requires, reqs...)
	}
	c.vars = c.exts["variables"]
	body, err := c.block(cmds[i:])
	if err != nil {
		return nil, err
	}
	s.body = body
	return s, nil
}

func badUTF8Line(src []byte) int {
	line := 1
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && n == 1 {
			return line
		}
		if src[i] == '\n' {
			line++
		}
		i += n
	}
	return line
}

func errAt(line int, format string, a ...any) error {
	return &Error{Line: line, Msg: fmt.Sprintf(format, a...)}
}

func (c *compiler) require(cmd *command) ([]string, error) {
	if len(cmd.args) != 1 || cmd.args[0].kind == argTag || cmd.args[0].kind == argNumber || len(cmd.tests) > 0 || cmd.hasBlock {
		return nil, errAt(cmd.line, "require takes one string list of capabilities")
	}
	var out []string
	for _, e := range cmd.args[0].strs {
		name := strings.ToLower(e)
		if !extensions[name] || c.allowed != nil && !c.allowed[name] {
			return nil, errAt(cmd.line, "require: unknown or unsupported capability %q", e)
		}
		c.exts[name] = true
		out = append(out, name)
	}
	if c.exts["spamtestplus"] {
		c.exts["spamtest"] = true
	}
	if c.exts["vacation-seconds"] {
		c.exts["vacation"] = true
	}
	return out, nil
}

func (c *compiler) need(ext string, line int, what string) error {
	if !c.exts[ext] {
		return errAt(line, "%s needs require %q", what, ext)
	}
	return nil
}

func (c *compiler) block(cmds []*command) ([]*stmt, error) {
	var out []*stmt
	for i := 0; i < len(cmds); i++ {
		cmd := cmds[i]
		switch cmd.name {
		case "if":
			st := &stmt{op: opIf, line: cmd.line}
			if err := c.ifArm(st, cmd); err != nil {
				return nil, err
			}
			for i+1 < len(cmds) && cmds[i+1].name == "elsif" {
				i++
				if err := c.ifArm(st, cmds[i]); err != nil {
					return nil, err
				}
			}
			if i+1 < len(cmds) && cmds[i+1].name == "else" {
				i++
				e := cmds[i]
				if len(e.args) > 0 || len(e.tests) > 0 || !e.hasBlock {
					return nil, errAt(e.line, "else takes no arguments, only a block")
				}
				b, err := c.block(e.block)
				if err != nil {
					return nil, err
				}
				st.blocks = append(st.blocks, b)
			}
			out = append(out, st)
		case "elsif", "else":
			return nil, errAt(cmd.line, "%s without a preceding if", cmd.name)
		case "require":
			return nil, errAt(cmd.line, "require must come before any other command")
		default:
			st, err := c.action(cmd)
			if err != nil {
				return nil, err
			}
			out = append(out, st)
		}
	}
	return out, nil
}

func (c *compiler) ifArm(st *stmt, cmd *command) error {
	if len(cmd.args) > 0 || len(cmd.tests) != 1 || cmd.testList || !cmd.hasBlock {
		return errAt(cmd.line, "%s takes one test (not a list in parentheses) and a block", cmd.name)
	}
	t, err := c.test(cmd.tests[0])
	if err != nil {
		return err
	}
	b, err := c.block(cmd.block)
	if err != nil {
		return err
	}
	st.conds = append(st.conds, t)
	st.blocks = append(st.blocks, b)
	return nil
}

// tagSpec says what parameter a tag takes.
type tagParam int

const (
	noParam tagParam = iota
	stringParam
	listParam
	numberParam
)

// takeTags walks the raw arguments of a command, matching tags against
// spec, and returns the tags found with their parameters, and the
// positional arguments.
func takeTags(what string, line int, raw []arg, spec map[string]tagParam) (map[string]arg, []arg, []string, error) {
	tags := map[string]arg{}
	var order []string
	var pos []arg
	for i := 0; i < len(raw); i++ {
		x := raw[i]
		if x.kind != argTag {
			pos = append(pos, x)
			continue
		}
		if len(pos) > 0 {
			return nil, nil, nil, errAt(x.line, "%s: tag %s after positional arguments", what, x.tag)
		}
		p, ok := spec[x.tag]
		if !ok {
			return nil, nil, nil, errAt(x.line, "%s: unknown tag %s", what, x.tag)
		}
		if _, dup := tags[x.tag]; dup {
			if x.tag == ":last" {
				continue // Pigeonhole lets it be repeated: it says the same
			}
			return nil, nil, nil, errAt(x.line, "%s: tag %s given twice", what, x.tag)
		}
		v := x
		if p != noParam {
			if i+1 >= len(raw) {
				return nil, nil, nil, errAt(x.line, "%s: tag %s needs a parameter", what, x.tag)
			}
			n := raw[i+1]
			switch {
			case p == numberParam && n.kind != argNumber:
				return nil, nil, nil, errAt(n.line, "%s: tag %s needs a number", what, x.tag)
			case p == stringParam && n.kind != argString:
				return nil, nil, nil, errAt(n.line, "%s: tag %s needs a string", what, x.tag)
			case p == listParam && n.kind != argString && n.kind != argList:
				return nil, nil, nil, errAt(n.line, "%s: tag %s needs a string list", what, x.tag)
			}
			v.num, v.strs = n.num, n.strs
			i++
		}
		tags[x.tag] = v
		order = append(order, x.tag)
	}
	return tags, pos, order, nil
}

// positional checks the positional arguments' count and kinds: 's' a
// string, 'l' a string list (a string will do), 'n' a number.
func positional(what string, line int, pos []arg, kinds string) error {
	if len(pos) != len(kinds) {
		return errAt(line, "%s takes %d positional argument(s), found %d", what, len(kinds), len(pos))
	}
	for i, k := range kinds {
		a := pos[i]
		switch {
		case k == 's' && a.kind != argString:
			return errAt(a.line, "%s: argument %d must be a string", what, i+1)
		case k == 'l' && a.kind != argString && a.kind != argList:
			return errAt(a.line, "%s: argument %d must be a string list", what, i+1)
		case k == 'n' && a.kind != argNumber:
			return errAt(a.line, "%s: argument %d must be a number", what, i+1)
		}
	}
	return nil
}

func (c *compiler) action(cmd *command) (*stmt, error) {
	st := &stmt{line: cmd.line}
	if !commands[cmd.name] {
		return nil, errAt(cmd.line, "unknown command '%s'", cmd.name)
	}
	if len(cmd.tests) > 0 {
		// Most often a missing semicolon: the next command was read
		// as a test.
		return nil, errAt(cmd.tests[0].line, "%s takes no test: missing ';' before '%s'?", cmd.name, cmd.tests[0].name)
	}
	if cmd.hasBlock {
		return nil, errAt(cmd.line, "%s takes no block", cmd.name)
	}
	spec := map[string]tagParam{}
	kinds := ""
	switch cmd.name {
	case "stop":
		st.op = opStop
	case "keep":
		st.op = opKeep
		if c.exts["imap4flags"] {
			spec[":flags"] = listParam
		}
	case "discard":
		st.op = opDiscard
	case "redirect":
		st.op, kinds = opRedirect, "s"
		if c.exts["copy"] {
			spec[":copy"] = noParam
		}
	case "fileinto":
		if err := c.need("fileinto", cmd.line, "fileinto"); err != nil {
			return nil, err
		}
		st.op, kinds = opFileInto, "s"
		if c.exts["copy"] {
			spec[":copy"] = noParam
		}
		if c.exts["mailbox"] {
			spec[":create"] = noParam
		}
		if c.exts["imap4flags"] {
			spec[":flags"] = listParam
		}
	case "reject", "ereject":
		if err := c.need(cmd.name, cmd.line, cmd.name); err != nil {
			return nil, err
		}
		st.op, kinds = opReject, "s"
		if cmd.name == "ereject" {
			st.op = opEReject
		}
	case "setflag", "addflag", "removeflag":
		if err := c.need("imap4flags", cmd.line, cmd.name); err != nil {
			return nil, err
		}
		st.op = map[string]opcode{"setflag": opSetFlag, "addflag": opAddFlag, "removeflag": opRemoveFlag}[cmd.name]
		kinds = "l"
		if n := len(cmd.args); n >= 2 {
			// Variable name and flag list; Pigeonhole ignores any
			// further argument, and so do we, to accept the same
			// scripts.
			kinds = "sl" + strings.Repeat("l", n-2)
		}
	case "set":
		if err := c.need("variables", cmd.line, "set"); err != nil {
			return nil, err
		}
		st.op, kinds = opSet, "ss"
		for _, m := range []string{":lower", ":upper", ":lowerfirst", ":upperfirst", ":quotewildcard", ":length"} {
			spec[m] = noParam
		}
	case "vacation":
		if err := c.need("vacation", cmd.line, "vacation"); err != nil {
			return nil, err
		}
		st.op, kinds = opVacation, "s"
		spec[":days"] = numberParam
		if c.exts["vacation-seconds"] {
			spec[":seconds"] = numberParam
		}
		spec[":subject"] = stringParam
		spec[":from"] = stringParam
		spec[":addresses"] = listParam
		spec[":mime"] = noParam
		spec[":handle"] = stringParam
	default:
		return nil, errAt(cmd.line, "unknown command '%s'", cmd.name)
	}
	tags, pos, order, err := takeTags(cmd.name, cmd.line, cmd.args, spec)
	if err != nil {
		return nil, err
	}
	if err := positional(cmd.name, cmd.line, pos, kinds); err != nil {
		return nil, err
	}
	_, st.copy = tags[":copy"]
	_, st.create = tags[":create"]
	if f, ok := tags[":flags"]; ok {
		st.hasFlags = true
		if st.flags, err = c.tmpls(f.line, f.strs); err != nil {
			return nil, err
		}
	}
	switch st.op {
	case opRedirect:
		if st.str, err = c.tmpl(pos[0].line, pos[0].strs[0]); err != nil {
			return nil, err
		}
		if st.str.literal() {
			if _, ok := parseAddrSpec(pos[0].strs[0]); !ok {
				return nil, errAt(pos[0].line, "redirect: %q is not a valid address", pos[0].strs[0])
			}
		}
	case opFileInto:
		if st.str, err = c.tmpl(pos[0].line, pos[0].strs[0]); err != nil {
			return nil, err
		}
	case opReject, opEReject:
		if st.str, err = c.tmpl(pos[0].line, pos[0].strs[0]); err != nil {
			return nil, err
		}
	case opSetFlag, opAddFlag, opRemoveFlag:
		list := pos[min(len(pos)-1, 1)]
		if len(pos) >= 2 {
			if !c.vars {
				return nil, errAt(cmd.line, "%s with a variable name needs require \"variables\"", cmd.name)
			}
			st.name = strings.ToLower(pos[0].strs[0])
			if !validVarName(st.name) {
				return nil, errAt(pos[0].line, "%s: invalid variable name %q", cmd.name, pos[0].strs[0])
			}
		}
		st.hasFlags = true
		if st.flags, err = c.tmpls(list.line, list.strs); err != nil {
			return nil, err
		}
	case opSet:
		st.name = strings.ToLower(pos[0].strs[0])
		if !validVarName(st.name) {
			return nil, errAt(pos[0].line, "set: invalid variable name %q", pos[0].strs[0])
		}
		if st.str, err = c.tmpl(pos[1].line, pos[1].strs[0]); err != nil {
			return nil, err
		}
		if st.mods, err = setModifiers(cmd.line, order); err != nil {
			return nil, err
		}
	case opVacation:
		if st.vac, err = c.vacation(cmd.line, tags); err != nil {
			return nil, err
		}
		if st.str, err = c.tmpl(pos[0].line, pos[0].strs[0]); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// setModifiers orders set's modifiers by RFC 5229's precedence (:lower
// and :upper first, :length last) and refuses two of one precedence.
func setModifiers(line int, order []string) ([]string, error) {
	prec := map[string]int{":lower": 40, ":upper": 40, ":lowerfirst": 30, ":upperfirst": 30, ":quotewildcard": 20, ":length": 10}
	var mods []string
	seen := map[int]string{}
	for _, m := range order {
		p := prec[m]
		if o, dup := seen[p]; dup {
			return nil, errAt(line, "set: modifiers %s and %s cannot be used together", o, m)
		}
		seen[p] = m
		mods = append(mods, m)
	}
	for i := 1; i < len(mods); i++ {
		for j := i; j > 0 && prec[mods[j]] > prec[mods[j-1]]; j-- {
			mods[j], mods[j-1] = mods[j-1], mods[j]
		}
	}
	return mods, nil
}

func (c *compiler) vacation(line int, tags map[string]arg) (*vacationArgs, error) {
	v := &vacationArgs{period: vacationDefaultPeriod}
	_, days := tags[":days"]
	_, secs := tags[":seconds"]
	if days && secs {
		return nil, errAt(line, "vacation: :days and :seconds cannot be used together")
	}
	if days {
		v.period = time.Duration(min(tags[":days"].num, 1<<20)) * 24 * time.Hour
	}
	if secs {
		v.period = time.Duration(min(tags[":seconds"].num, 1<<35)) * time.Second
	}
	v.requested, v.hasPeriod = v.period, days || secs
	if v.period < vacationMinPeriod {
		v.period = vacationMinPeriod
	}
	var err error
	if a, ok := tags[":subject"]; ok {
		v.hasSubj = true
		if v.subject, err = c.tmpl(a.line, a.strs[0]); err != nil {
			return nil, err
		}
	}
	if a, ok := tags[":from"]; ok {
		v.hasFrom = true
		if v.from, err = c.tmpl(a.line, a.strs[0]); err != nil {
			return nil, err
		}
		if v.from.literal() {
			if _, ok := parseAddressLoose(a.strs[0]); !ok {
				return nil, errAt(a.line, "vacation: :from %q is not a valid address", a.strs[0])
			}
		}
	}
	if a, ok := tags[":addresses"]; ok {
		if v.addresses, err = c.tmpls(a.line, a.strs); err != nil {
			return nil, err
		}
	}
	_, v.mime = tags[":mime"]
	if a, ok := tags[":handle"]; ok {
		v.hasHandle = true
		if v.handle, err = c.tmpl(a.line, a.strs[0]); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// Tag sets shared by the match tests.
func (c *compiler) matchSpec(spec map[string]tagParam) {
	spec[":comparator"] = stringParam
	spec[":is"] = noParam
	spec[":contains"] = noParam
	spec[":matches"] = noParam
	if c.exts["relational"] {
		spec[":value"] = stringParam
		spec[":count"] = stringParam
	}
}

func (c *compiler) addrSpec(spec map[string]tagParam) {
	spec[":all"] = noParam
	spec[":localpart"] = noParam
	spec[":domain"] = noParam
	if c.exts["subaddress"] {
		spec[":user"] = noParam
		spec[":detail"] = noParam
	}
}

func (c *compiler) indexSpec(spec map[string]tagParam) {
	if c.exts["index"] {
		spec[":index"] = numberParam
		spec[":last"] = noParam
	}
}

// matcherOf reads the comparator and match type tags.
func (c *compiler) matcherOf(what string, line int, tags map[string]arg, order []string, def string) (matcher, error) {
	m := matcher{typ: matchIs, cmp: def}
	n := 0
	for _, t := range order {
		switch t {
		case ":is", ":contains", ":matches", ":value", ":count":
			n++
			m.typ = map[string]matchType{":is": matchIs, ":contains": matchContains, ":matches": matchMatches, ":value": matchValue, ":count": matchCount}[t]
			if t == ":value" || t == ":count" {
				m.rel = strings.ToLower(tags[t].strs[0])
				switch m.rel {
				case "gt", "ge", "lt", "le", "eq", "ne":
				default:
					return m, errAt(tags[t].line, "%s: %s: unknown relation %q", what, t, tags[t].strs[0])
				}
			}
		}
	}
	if n > 1 {
		return m, errAt(line, "%s: more than one match type", what)
	}
	if a, ok := tags[":comparator"]; ok {
		m.cmp = strings.ToLower(a.strs[0])
		switch m.cmp {
		case "i;octet", "i;ascii-casemap":
		case "i;ascii-numeric":
			if !c.exts["comparator-i;ascii-numeric"] {
				return m, errAt(a.line, "%s: comparator i;ascii-numeric needs require \"comparator-i;ascii-numeric\"", what)
			}
			if m.typ == matchContains || m.typ == matchMatches {
				return m, errAt(line, "%s: comparator i;ascii-numeric cannot do substring matching", what)
			}
		default:
			return m, errAt(a.line, "%s: unknown comparator %q", what, a.strs[0])
		}
	}
	return m, nil
}

func partOf(what string, line int, order []string) (addrPart, error) {
	p, n := partAll, 0
	for _, t := range order {
		switch t {
		case ":all", ":localpart", ":domain", ":user", ":detail":
			n++
			p = map[string]addrPart{":all": partAll, ":localpart": partLocal, ":domain": partDomain, ":user": partUser, ":detail": partDetail}[t]
		}
	}
	if n > 1 {
		return p, errAt(line, "%s: more than one address part", what)
	}
	return p, nil
}

func (c *compiler) test(t *test) (*cond, error) {
	cd := &cond{line: t.line}
	if len(t.tests) > 0 && t.name != "not" && t.name != "allof" && t.name != "anyof" {
		return nil, errAt(t.line, "test '%s' takes no tests", t.name)
	}
	spec := map[string]tagParam{}
	kinds := ""
	def := "i;ascii-casemap"
	switch t.name {
	case "true", "false":
		cd.kind = tTrue
		if t.name == "false" {
			cd.kind = tFalse
		}
	case "not":
		if len(t.tests) != 1 || t.list || len(t.args) > 0 {
			return nil, errAt(t.line, "not takes one test")
		}
		inner, err := c.test(t.tests[0])
		if err != nil {
			return nil, err
		}
		cd.kind, cd.tests = tNot, []*cond{inner}
		return cd, nil
	case "allof", "anyof":
		if !t.list || len(t.args) > 0 {
			return nil, errAt(t.line, "%s takes a test list in parentheses", t.name)
		}
		cd.kind = tAllOf
		if t.name == "anyof" {
			cd.kind = tAnyOf
		}
		for _, x := range t.tests {
			inner, err := c.test(x)
			if err != nil {
				return nil, err
			}
			cd.tests = append(cd.tests, inner)
		}
		return cd, nil
	case "address":
		cd.kind, kinds = tAddress, "ll"
		c.matchSpec(spec)
		c.addrSpec(spec)
		c.indexSpec(spec)
	case "header":
		cd.kind, kinds = tHeader, "ll"
		c.matchSpec(spec)
		c.indexSpec(spec)
	case "envelope":
		if err := c.need("envelope", t.line, "envelope"); err != nil {
			return nil, err
		}
		cd.kind, kinds = tEnvelope, "ll"
		c.matchSpec(spec)
		c.addrSpec(spec)
	case "exists":
		cd.kind, kinds = tExists, "l"
	case "size":
		cd.kind, kinds = tSize, "n"
		spec[":over"] = noParam
		spec[":under"] = noParam
	case "body":
		if err := c.need("body", t.line, "body"); err != nil {
			return nil, err
		}
		cd.kind, kinds = tBody, "l"
		c.matchSpec(spec)
		spec[":raw"] = noParam
		spec[":text"] = noParam
		spec[":content"] = listParam
	case "string":
		if err := c.need("variables", t.line, "string"); err != nil {
			return nil, err
		}
		cd.kind, kinds = tString, "ll"
		c.matchSpec(spec)
	case "date", "currentdate":
		if err := c.need("date", t.line, t.name); err != nil {
			return nil, err
		}
		cd.kind, kinds = tDate, "sl"
		spec[":zone"] = stringParam
		if t.name == "date" {
			cd.kind, kinds = tDate, "ssl"
			spec[":originalzone"] = noParam
			c.indexSpec(spec)
		} else {
			cd.kind = tCurrentDate
		}
		c.matchSpec(spec)
	case "hasflag":
		if err := c.need("imap4flags", t.line, "hasflag"); err != nil {
			return nil, err
		}
		cd.kind, kinds = tHasFlag, "l"
		if len(t.args) > 0 && countPositional(t.args) == 2 {
			kinds = "ll"
		}
		c.matchSpec(spec)
	case "mailboxexists":
		if err := c.need("mailbox", t.line, "mailboxexists"); err != nil {
			return nil, err
		}
		cd.kind, kinds = tMailboxExists, "l"
	case "spamtest":
		if err := c.need("spamtest", t.line, "spamtest"); err != nil {
			return nil, err
		}
		cd.kind, kinds = tSpamTest, "s"
		c.matchSpec(spec)
		if c.exts["spamtestplus"] {
			spec[":percent"] = noParam
		}
	case "virustest":
		if err := c.need("virustest", t.line, "virustest"); err != nil {
			return nil, err
		}
		cd.kind, kinds = tVirusTest, "s"
		c.matchSpec(spec)
	default:
		return nil, errAt(t.line, "unknown test '%s'", t.name)
	}
	tags, pos, order, err := takeTags(t.name, t.line, t.args, spec)
	if err != nil {
		return nil, err
	}
	if err := positional(t.name, t.line, pos, kinds); err != nil {
		return nil, err
	}
	if _, ok := spec[":is"]; ok {
		if cd.match, err = c.matcherOf(t.name, t.line, tags, order, def); err != nil {
			return nil, err
		}
	}
	if cd.part, err = partOf(t.name, t.line, order); err != nil {
		return nil, err
	}
	if a, ok := tags[":index"]; ok {
		if a.num < 1 {
			return nil, errAt(a.line, "%s: :index must be 1 or more", t.name)
		}
		cd.index = int(min(a.num, 1<<30))
	}
	if _, ok := tags[":last"]; ok {
		if cd.index == 0 {
			return nil, errAt(t.line, "%s: :last needs :index", t.name)
		}
		cd.last = true
	}
	switch cd.kind {
	case tAddress, tHeader, tEnvelope:
		if cd.headers, err = c.tmpls(pos[0].line, pos[0].strs); err != nil {
			return nil, err
		}
		for i, h := range pos[0].strs {
			if !cd.headers[i].literal() {
				continue
			}
			switch cd.kind {
			case tAddress:
				if !addressHeaders[strings.ToLower(h)] {
					return nil, errAt(pos[0].line, "address: header %q does not hold addresses", h)
				}
			case tEnvelope:
				switch strings.ToLower(h) {
				case "from", "to":
				default:
					return nil, errAt(pos[0].line, "envelope: unknown envelope part %q", h)
				}
			}
		}
		if cd.keys, err = c.tmpls(pos[1].line, pos[1].strs); err != nil {
			return nil, err
		}
	case tExists:
		if cd.headers, err = c.tmpls(pos[0].line, pos[0].strs); err != nil {
			return nil, err
		}
	case tSize:
		_, over := tags[":over"]
		_, under := tags[":under"]
		if over == under {
			return nil, errAt(t.line, "size needs exactly one of :over and :under")
		}
		cd.over, cd.size = over, pos[0].num
	case tBody:
		n := 0
		for _, x := range order {
			switch x {
			case ":raw":
				cd.transform, n = bodyRaw, n+1
			case ":text":
				cd.transform, n = bodyText, n+1
			case ":content":
				cd.transform, n = bodyContent, n+1
				cd.types = tags[":content"].strs
			}
		}
		if n > 1 {
			return nil, errAt(t.line, "body: more than one body transform")
		}
		if cd.keys, err = c.tmpls(pos[0].line, pos[0].strs); err != nil {
			return nil, err
		}
	case tString:
		if cd.headers, err = c.tmpls(pos[0].line, pos[0].strs); err != nil {
			return nil, err
		}
		if cd.keys, err = c.tmpls(pos[1].line, pos[1].strs); err != nil {
			return nil, err
		}
	case tDate, tCurrentDate:
		// A :zone that is not +hhmm or -hhmm is ignored (local time), as
		// Pigeonhole does.
		if z, ok := tags[":zone"]; ok {
			if _, ok := parseZone(z.strs[0]); ok {
				cd.zone = z.strs[0]
			}
		}
		if _, ok := tags[":originalzone"]; ok {
			if cd.zone != "" {
				return nil, errAt(t.line, "date: :zone and :originalzone cannot be used together")
			}
			cd.origZone = true
		}
		i := 0
		if cd.kind == tDate {
			if cd.headers, err = c.tmpls(pos[0].line, pos[0].strs); err != nil {
				return nil, err
			}
			i = 1
		}
		// An unknown date part is not an error (Pigeonhole agrees): the
		// test is false.
		cd.datePart = strings.ToLower(pos[i].strs[0])
		if cd.keys, err = c.tmpls(pos[i+1].line, pos[i+1].strs); err != nil {
			return nil, err
		}
	case tHasFlag:
		if len(pos) == 2 {
			if !c.vars {
				return nil, errAt(t.line, "hasflag with variable names needs require \"variables\"")
			}
			if cd.vars, err = c.tmpls(pos[0].line, pos[0].strs); err != nil {
				return nil, err
			}
			for i, name := range pos[0].strs {
				if cd.vars[i].literal() && !validVarName(strings.ToLower(name)) {
					return nil, errAt(pos[0].line, "hasflag: invalid variable name %q", name)
				}
			}
		}
		last := pos[len(pos)-1]
		if cd.keys, err = c.tmpls(last.line, last.strs); err != nil {
			return nil, err
		}
	case tMailboxExists:
		if cd.keys, err = c.tmpls(pos[0].line, pos[0].strs); err != nil {
			return nil, err
		}
	case tSpamTest, tVirusTest:
		_, cd.percent = tags[":percent"]
		if cd.keys, err = c.tmpls(pos[0].line, pos[0].strs); err != nil {
			return nil, err
		}
	}
	return cd, nil
}

func countPositional(as []arg) int {
	n := 0
	for i := 0; i < len(as); i++ {
		switch {
		case as[i].kind == argTag && as[i].tag == ":comparator" || as[i].kind == argTag && (as[i].tag == ":value" || as[i].tag == ":count"):
			i++
		case as[i].kind != argTag:
			n++
		}
	}
	return n
}

func validVarName(s string) bool {
	if s == "" || isDigit(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(isAlpha(s[i]) || isDigit(s[i]) || s[i] == '_') {
			return false
		}
	}
	return true
}
