package sieve

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func run(t *testing.T, src, msg string, env Env) *Result {
	t.Helper()
	s, err := Compile([]byte(src), Options{})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	res, err := s.Run(context.Background(), env, ParseMessage([]byte(msg)))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

const plainMsg = "From: Ann <ann@example.org>\nTo: me+work@example.com\nSubject: hello world\n\nbody\n"

// TestResults covers what the Pigeonhole corpus cannot: extensions
// Pigeonhole 2.3 lacks (ereject), the Env hooks, and the API's fields.
func TestResults(t *testing.T) {
	tests := []struct {
		name string
		src  string
		env  Env
		want string // Result.String()
	}{
		{"ereject", `require "ereject"; ereject "go away";`, Env{}, "ereject \"go away\"\n"},
		{"mailboxexists asks Env", `require ["mailbox", "fileinto"]; if mailboxexists "Work" { fileinto "Work"; }`,
			Env{MailboxExists: func(n string) bool { return n == "Work" }}, "fileinto \"Work\"\n"},
		{"subaddress separator from Env", `require ["subaddress", "envelope", "fileinto", "variables"]; if envelope :detail :matches "to" "*" { fileinto "${1}"; }`,
			Env{To: "me-lists@example.com", SubaddressSeparator: "-"}, "fileinto \"lists\"\n"},
		{"null sender", `require "envelope"; if envelope :is "from" "" { discard; }`, Env{From: ""}, "discard\n"},
		{"spamtest not tested", `require "spamtest"; if spamtest :is "0" { discard; }`, Env{}, "discard\n"},
		{"spamtest tested", `require ["spamtestplus", "relational", "comparator-i;ascii-numeric"]; if spamtest :percent :value "ge" :comparator "i;ascii-numeric" "90" { discard; }`,
			Env{Spam: ScoreVerdict(9.5, 10, false)}, "discard\n"},
		{"currentdate from Env", `require ["date", "fileinto", "variables"]; if currentdate :zone "+0000" :matches "date" "*" { fileinto "${1}"; }`,
			Env{Now: time.Date(2026, 12, 3, 23, 0, 0, 0, time.UTC)}, "fileinto \"2026-12-03\"\n"},
		{"implicit keep flags", `require "imap4flags"; addflag "\\seen $label1"; addflag "\\SEEN";`, Env{}, "implicit keep flags \\Seen $label1\n"},
		{"unknown system flags dropped", `require "imap4flags"; addflag ["\\Bogus", "ok", "(bad"];`, Env{}, "implicit keep flags ok (bad\n"},
		{"keep and fileinto INBOX merge", `require "fileinto"; keep; fileinto "inbox";`, Env{}, "keep\n"},
		{"redirect copy keeps", `require "copy"; redirect :copy "a@example.net";`, Env{}, "redirect :copy \"a@example.net\"\nimplicit keep\n"},
		{"stop ends the script", `discard; stop; keep;`, Env{}, "discard\n"},
		{"match variables", `require ["variables", "fileinto"]; if header :matches "subject" "*l?o*" { fileinto "${1}|${2}|${3}|${0}"; }`,
			Env{}, "fileinto \"he|l| world|hello world\"\n"},
		{"set modifiers in precedence order", `require ["variables", "fileinto"]; set :length :upper "x" "abc"; set :upperfirst :lower "y" "ABC"; fileinto "${x}${y}";`,
			Env{}, "fileinto \"3Abc\"\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := run(t, tc.src, plainMsg, tc.env).String(); got != tc.want {
				t.Errorf("result:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestVacationParams(t *testing.T) {
	res := run(t, `require ["vacation", "vacation-seconds", "variables"];
if header :matches "subject" "*" { set "s" "${1}"; }
vacation :seconds 60 :subject "Re: ${s}" :from "Me <me@example.com>" :addresses ["me@example.com", "alias@example.com"] :mime text:
Content-Type: text/plain

Away.
.
;`, plainMsg, Env{})
	if len(res.Actions) != 1 || res.Actions[0].Kind != Vacation || !res.ImplicitKeep {
		t.Fatalf("result %s", res)
	}
	want := &VacationParams{
		Reason:    "Content-Type: text/plain\r\n\r\nAway.\r\n",
		Subject:   "Re: hello world",
		From:      "Me <me@example.com>",
		Addresses: []string{"me@example.com", "alias@example.com"},
		Mime:      true,
		Handle:    "Content-Type: text/plain\r\n\r\nAway.\r\nRe: hello worldMe <me@example.com><MIME>",
		// :seconds under the one-day minimum is raised to it; the
		// request stays for a responder with a lower minimum.
		Period:    24 * time.Hour,
		Requested: time.Minute, HasPeriod: true,
	}
	if got := res.Actions[0].Vacation; !reflect.DeepEqual(got, want) {
		t.Errorf("vacation\n got %+v\nwant %+v", got, want)
	}
	res = run(t, `require "vacation"; vacation :days 30 :handle "h" "x";`, plainMsg, Env{})
	if v := res.Actions[0].Vacation; v.Period != 30*24*time.Hour || v.Handle != "h" {
		t.Errorf("vacation :days 30 = %+v", v)
	}
}

// TestCompileErrors: errors say what is wrong and on which line.
func TestCompileErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"require \"fileinto\";\nfileinto \"a\"\nkeep;", "line 3: fileinto takes no test: missing ';' before 'keep'?"},
		{"keep;\n\nfrobnicate;", "line 3: unknown command 'frobnicate'"},
		{"if true {\n keep;\n", "line 3: expected a command or '}' but found end of script"},
		{"if header :is\n  \"subject\" { keep; }", "line 1: header takes 2 positional argument(s), found 1"},
		{"\n\nredirect \"bad\";", "line 3: redirect: \"bad\" is not a valid address"},
		{"require [\"vacation\"];\nvacation :days \"x\" \"y\";", "line 2: vacation: tag :days needs a number"},
		{"if header :comparator \"i;nope\" :is \"a\" \"b\" { keep; }", "line 1: header: unknown comparator \"i;nope\""},
		{"keep;\n/* open", "line 2: unterminated comment"},
		{"require \"reject\";\nreject text:\nno end", "line 2: unterminated text: string"},
		{"fileinto \"x\";", "line 1: fileinto needs require \"fileinto\""},
		{"keep;\nrequire \"fileinto\";", "line 2: require must come before any other command"},
	}
	for _, tc := range tests {
		_, err := Compile([]byte(tc.src), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Compile(%q) = %v, want %q", tc.src, err, tc.want)
		}
	}
}

func TestRequiresAndExtensions(t *testing.T) {
	s, err := Compile([]byte(`require ["fileinto", "Variables"]; require "copy";`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Requires(); !reflect.DeepEqual(got, []string{"fileinto", "variables", "copy"}) {
		t.Errorf("Requires = %v", got)
	}
	for _, e := range Extensions() {
		if _, err := Compile([]byte(`require "`+e+`";`), Options{}); err != nil {
			t.Errorf("advertised extension %s: %v", e, err)
		}
	}
	if _, err := Compile([]byte(`require "reject";`), Options{Extensions: []string{"fileinto"}}); err == nil {
		t.Error("an extension outside Options.Extensions compiles")
	}
}

// TestGlob: :matches finds a match whenever one exists, with each
// wildcard as short as possible from the left.
func TestGlob(t *testing.T) {
	tests := []struct {
		pat, s string
		fold   bool
		ok     bool
		caps   []string
	}{
		{"*", "", false, true, []string{"", ""}},
		{"a*b", "aXXb", false, true, []string{"aXXb", "XX"}},
		{"*b*", "abcbd", false, true, []string{"abcbd", "a", "cbd"}},
		{"?*?", "ab", false, true, []string{"ab", "a", "", "b"}},
		{"?", "é", false, false, nil},
		{"??", "é", false, true, []string{"é", "\xc3", "\xa9"}},
		{"A*", "abc", true, true, []string{"abc", "bc"}},
		{"A*", "abc", false, false, nil},
		{`\**`, "*x", false, true, []string{"*x", "x"}},
		{`\*`, "x", false, false, nil},
		{"*a*a*a*b", strings.Repeat("a", 5000), false, false, nil},
		{"*.*@*", "first.last@example.org", false, true, []string{"first.last@example.org", "first", "last", "example.org"}},
		// Pigeonhole 0.5.19 matches this one: when the text after a
		// '?' fails with no '*' before to go back to, it goes on as if
		// it had matched. RFC 5228 says no match, and so do we.
		{"x? y*", "xab yz", false, false, nil},
	}
	for _, tc := range tests {
		var caps []string
		ok := glob(tc.pat, tc.s, tc.fold, &caps)
		if ok != tc.ok || ok && !reflect.DeepEqual(caps, tc.caps) {
			t.Errorf("glob(%q, %q) = %v %q, want %v %q", tc.pat, tc.s, ok, caps, tc.ok, tc.caps)
		}
	}
}

func TestScoreVerdict(t *testing.T) {
	tests := []struct {
		score, max float64
		virus      bool
		want       Verdict
	}{
		{6.5, 10, false, Verdict{true, 6, 65}},
		{0, 10, false, Verdict{true, 1, 0}},
		{25, 10, false, Verdict{true, 10, 100}},
		{-1, 10, false, Verdict{Tested: true}},
		{5, 5, true, Verdict{true, 5, 100}},
		{1, 0, false, Verdict{}},
	}
	for _, tc := range tests {
		if got := ScoreVerdict(tc.score, tc.max, tc.virus); got != tc.want {
			t.Errorf("ScoreVerdict(%v, %v, %v) = %+v, want %+v", tc.score, tc.max, tc.virus, got, tc.want)
		}
	}
}

// TestConcurrentRuns: one compiled Script serves many deliveries at once
// (run with -race).
func TestConcurrentRuns(t *testing.T) {
	s, err := Compile([]byte(`require ["variables", "fileinto", "imap4flags", "body"];
if header :matches "subject" "* *" { set "w" "${1}"; addflag "${2}"; }
if body :text :contains "body" { fileinto "${w}"; }`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := ParseMessage([]byte(plainMsg))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				res, err := s.Run(context.Background(), Env{}, m)
				if err != nil || res.String() != "fileinto :flags \"world\" \"hello\"\n" {
					t.Errorf("Run = %q, %v", res, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestRuntimeErrorKeeps(t *testing.T) {
	s, err := Compile([]byte(`require ["variables"]; set "a" "not an address"; redirect "${a}";`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(context.Background(), Env{}, ParseMessage([]byte(plainMsg)))
	var re *RuntimeError
	if !errors.As(err, &re) || re.Line != 1 || !res.ImplicitKeep || len(res.Actions) != 0 {
		t.Fatalf("Run = %+v, %v; want the implicit keep and a RuntimeError on line 1", res, err)
	}
}
