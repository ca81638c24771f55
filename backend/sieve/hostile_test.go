package sieve

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestHostileCompile: scripts built to cost too much are refused at
// compile time with an error that says which limit, and where.
func TestHostileCompile(t *testing.T) {
	list := func(n int) string {
		var b strings.Builder
		b.WriteString("[")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"s%d"`, i)
		}
		return b.String() + "]"
	}
	tests := []struct {
		name, src string
		opts      Options
		want      string // in the error
		line      int
	}{
		{"deep blocks", strings.Repeat("if true {\n", 40) + "keep;" + strings.Repeat("}", 40), Options{}, "blocks nested 32 levels deep", 32},
		{"deep tests", "if " + strings.Repeat("not ", 100) + "true { keep; }", Options{}, "tests nested 32 levels deep", 1},
		{"deep test lists", "if " + strings.Repeat("anyof(", 40) + "true" + strings.Repeat(")", 40) + " { keep; }", Options{}, "tests nested 32 levels deep", 1},
		{"huge string list", "if header :is \"subject\"\n" + list(5000) + " { keep; }", Options{}, "string list longer than 1024 strings", 2},
		{"huge string list, own limit", `if header :is "subject" ` + list(11) + " { keep; }", Options{Limits: Limits{MaxStringList: 10}}, "longer than 10", 1},
		{"huge test list", "if anyof(" + strings.Repeat("true,", 2000) + "true) { keep; }", Options{}, "more than 1024 tests", 1},
		{"1 MB script", "# " + strings.Repeat("x", 1<<20) + "\nkeep;", Options{}, "larger than the limit of 1048576 bytes", 0},
		{"script over own limit", "keep;" + strings.Repeat(" ", 100), Options{Limits: Limits{MaxScriptSize: 100}}, "larger than the limit of 100", 0},
		{"extension not allowed", "require \"vacation\";\nvacation \"x\";", Options{Extensions: []string{"fileinto"}}, `unsupported capability "vacation"`, 1},
		{"not UTF-8", "keep;\n# \xff\n", Options{}, "not valid UTF-8", 2},
		{"number too large", "if size :over 99999999999999999999 { keep; }", Options{}, "number is too large", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := Compile([]byte(tc.src), tc.opts)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Compile: %v, want an *Error", err)
			}
			if !strings.Contains(ce.Msg, tc.want) || ce.Line != tc.line {
				t.Errorf("error %q at line %d, want %q at line %d", ce.Msg, ce.Line, tc.want, tc.line)
			}
			t.Logf("%v in %v", err, time.Since(start))
		})
	}
}

// TestHostileRun: what a script can only do at run time (redirect
// storms, action storms, growing variables, pathological :matches on
// long values) ends in a bounded run: a RuntimeError that keeps the
// message, or a normal result.
func TestHostileRun(t *testing.T) {
	redirects := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "redirect \"r%d@example.net\";\n", i)
		}
		return b.String()
	}
	fileintos := func(n int) string {
		var b strings.Builder
		b.WriteString("require \"fileinto\";\n")
		for i := range n {
			fmt.Fprintf(&b, "fileinto \"f%d\";\n", i)
		}
		return b.String()
	}
	doubling := "require \"variables\";\nset \"v\" \"xxxxxxxxxxxxxxxx\";\n" + strings.Repeat("set \"v\" \"${v}${v}\";\n", 64) + "require_never_reached;"
	doubling = strings.TrimSuffix(doubling, "require_never_reached;") + `if string :matches "${v}" "*x*x*x*x*x*x*x*x*y" { discard; }`
	long := strings.Repeat("a", 100000)
	msg := "From: a@example.org\nSubject: " + long + "\nX-Long: " + long + "\n\nbody\n"
	tests := []struct {
		name   string
		src    string
		limits Limits
		want   string // runtime error; "" wants none
	}{
		{"redirect storm", redirects(1000), Limits{}, "more than 4 redirects"},
		{"redirects at the limit", redirects(4), Limits{}, ""},
		{"same redirect many times", strings.Repeat("redirect \"same@example.net\";\n", 1000), Limits{}, ""},
		{"action storm", fileintos(1000), Limits{}, "more than 32 actions"},
		{"own redirect limit", redirects(2), Limits{MaxRedirects: 1}, "more than 1 redirects"},
		{"doubling variable", doubling, Limits{}, ""},
		{"pathological matches", `if header :matches "x-long" "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b" { discard; }`, Limits{}, ""},
		{"many pathological patterns", `if header :matches ["subject", "x-long"] [` + strings.TrimSuffix(strings.Repeat(`"*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",`, 1000), ",") + `] { discard; }`, Limits{MaxRunTime: 200 * time.Millisecond}, "run took longer than 200ms"},
		{"duplicate vacation", "require \"vacation\";\nvacation \"a\";\nvacation \"b\";", Limits{}, "duplicate vacation"},
		{"reject after keep", "require \"reject\";\nkeep;\nreject \"no\";", Limits{}, "conflicts with the keep action of line 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Compile([]byte(tc.src), Options{Limits: tc.limits})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			res, err := s.Run(context.Background(), Env{}, ParseMessage([]byte(msg)))
			took := time.Since(start)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				t.Logf("%d actions in %v", len(res.Actions), took)
				return
			}
			var re *RuntimeError
			if !errors.As(err, &re) || !strings.Contains(re.Msg, tc.want) {
				t.Fatalf("Run: %v, want a RuntimeError %q", err, tc.want)
			}
			if !res.ImplicitKeep || len(res.Actions) != 0 {
				t.Errorf("result after a runtime error = %+v, want the implicit keep only", res)
			}
			t.Logf("%v in %v", err, took)
		})
	}
}

// TestRunContext: a cancelled context ends the run like a limit.
func TestRunContext(t *testing.T) {
	src := `if header :matches "x" [` + strings.TrimSuffix(strings.Repeat(`"*a*b",`, 1000), ",") + `] { discard; }`
	s, err := Compile([]byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := ParseMessage([]byte("X: " + strings.Repeat("a", 1000) + "\n\n"))
	res, err := s.Run(ctx, Env{}, m)
	var re *RuntimeError
	if !errors.As(err, &re) || !strings.Contains(re.Msg, "context canceled") || !res.ImplicitKeep {
		t.Fatalf("Run = %+v, %v; want the implicit keep and a RuntimeError naming the cancel", res, err)
	}
}

// TestLargeScript: a script just under the 1 MiB limit, thousands of
// rules, compiles and runs (the time is logged, not asserted).
func TestLargeScript(t *testing.T) {
	var b strings.Builder
	b.WriteString("require [\"fileinto\", \"variables\"];\n")
	for i := 0; b.Len() < DefaultMaxScriptSize-200; i++ {
		fmt.Fprintf(&b, "if header :is \"subject\" \"needle %d\" { set \"n\" \"%d\"; fileinto \"F${n}\"; stop; }\n", i, i)
	}
	start := time.Now()
	s, err := Compile([]byte(b.String()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	compiled := time.Since(start)
	res, err := s.Run(context.Background(), Env{}, ParseMessage([]byte("Subject: needle 9999\n\n")))
	if err != nil || len(res.Actions) != 1 || res.Actions[0].Mailbox != "F9999" {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	t.Logf("%d bytes compiled in %v, run in %v", b.Len(), compiled, time.Since(start)-compiled)
}
