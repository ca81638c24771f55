package sieve

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/internal/pigeonhole"
)

// The envelope every corpus run uses, on both sides.
const (
	corpusFrom = "sender@ex.org"
	corpusTo   = "me@example.com"
)

func readCorpus(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if err != nil || len(names) == 0 {
		t.Fatalf("corpus %s: %v (%d files)", dir, err, len(names))
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(n)] = b
	}
	return out
}

// corpusEnv is the run environment sieve-test sees with the oracle's
// configuration: envelope from -f and -r, spam and virus verdicts from
// the score headers, dates in UTC.
func corpusEnv(m *Message) Env {
	env := Env{From: corpusFrom, To: corpusTo, Location: time.UTC}
	if vs := header(m.fields, pigeonhole.SpamHeader); len(vs) > 0 {
		if f, err := strconv.ParseFloat(strings.TrimSpace(vs[0]), 64); err == nil {
			env.Spam = ScoreVerdict(f, pigeonhole.SpamMax, false)
		}
	}
	if vs := header(m.fields, pigeonhole.VirusHeader); len(vs) > 0 {
		if f, err := strconv.ParseFloat(strings.TrimSpace(vs[0]), 64); err == nil {
			env.Virus = ScoreVerdict(f, pigeonhole.VirusMax, true)
		}
	}
	return env
}

// normalise writes our result in the oracle's normal form.
func normalise(res *Result, err error) []string {
	var re *RuntimeError
	if errors.As(err, &re) {
		return []string{"error", "implicit keep"}
	}
	var lines []string
	for _, a := range res.Actions {
		switch a.Kind {
		case Keep:
			lines = append(lines, pigeonhole.Store("INBOX", a.Flags, a.Create, a.Copy))
		case FileInto:
			lines = append(lines, pigeonhole.Store(sanitize(a.Mailbox, 128), a.Flags, a.Create, a.Copy))
		case Redirect:
			lines = append(lines, pigeonhole.Redirect(a.Address, a.Copy))
		case Reject, EReject:
			lines = append(lines, "reject "+sanitize(a.Reason, 128))
		case Discard:
			lines = append(lines, "discard")
		case Vacation:
			v := a.Vacation
			lines = append(lines, pigeonhole.Vacation(int64(v.Period/time.Second), v.Subject, v.Subject != "", v.From, v.From != "", v.Handle, v.Reason))
		}
	}
	if res.ImplicitKeep {
		lines = append(lines, "implicit keep"+pigeonhole.FlagsSuffix(res.KeepFlags))
	}
	return lines
}

// sanitize is how sieve-test prints a reject reason: control characters
// as '?', cut at max bytes with "...".
func sanitize(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 {
			c = '?'
		}
		b.WriteByte(c)
	}
	if b.Len() <= max {
		return b.String()
	}
	return truncate(b.String(), max-3) + "..."
}

// TestPigeonholeCorpus runs every script of testdata/scripts on every
// message of testdata/messages through the interpreter and through
// Pigeonhole's sieve-test, and wants the same actions from both.
func TestPigeonholeCorpus(t *testing.T) {
	o := pigeonhole.New(t)
	scripts := readCorpus(t, "scripts")
	msgs := readCorpus(t, "messages")
	if len(scripts) < 60 || len(msgs) < 30 {
		t.Fatalf("corpus too small: %d scripts, %d messages", len(scripts), len(msgs))
	}
	type job struct{ sn, mn string }
	jobs := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	mismatches := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				want, err := o.Test(scripts[j.sn], msgs[j.mn], corpusFrom, corpusTo)
				if err != nil {
					t.Errorf("%s × %s: %v", j.sn, j.mn, err)
					continue
				}
				got, cerr := ourLines(scripts[j.sn], msgs[j.mn])
				mu.Lock()
				switch {
				case !want.Compiled:
					t.Errorf("%s: sieve-test refuses a corpus script:\n%s", j.sn, want.Output)
				case cerr != nil:
					t.Errorf("%s: %v", j.sn, cerr)
				case strings.Join(got, "\n") != strings.Join(want.Lines, "\n"):
					mismatches++
					if mismatches <= 40 {
						t.Errorf("%s × %s:\n vmaild:     %q\n pigeonhole: %q", j.sn, j.mn, got, want.Lines)
					}
				}
				mu.Unlock()
			}
		}()
	}
	for sn := range scripts {
		for mn := range msgs {
			jobs <- job{sn, mn}
		}
	}
	close(jobs)
	wg.Wait()
	if mismatches > 0 {
		t.Errorf("%d of %d pairs differ", mismatches, len(scripts)*len(msgs))
	}
}

func ourLines(script, msg []byte) ([]string, error) {
	s, err := Compile(script, Options{})
	if err != nil {
		return nil, err
	}
	m := ParseMessage(msg)
	res, err := s.Run(context.Background(), corpusEnv(m), m)
	return normalise(res, err), nil
}

// TestPigeonholeInvalid wants every script of testdata/invalid refused
// by both sievec and Compile, and every script of testdata/scripts and
// testdata/accepted (edge cases: nesting just under the limit, odd but
// legal arguments) accepted by both.
func TestPigeonholeInvalid(t *testing.T) {
	o := pigeonhole.New(t)
	for dir, valid := range map[string]bool{"invalid": false, "scripts": true, "accepted": true} {
		for name, src := range readCorpus(t, dir) {
			ok, out, err := o.Check(src)
			if err != nil {
				t.Fatalf("%s: sievec: %v", name, err)
			}
			_, cerr := Compile(src, Options{})
			if ok != valid || (cerr == nil) != valid {
				t.Errorf("%s/%s: want valid=%v; sievec accepts=%v, vmaild: %v\n%s", dir, name, valid, ok, cerr, out)
			}
		}
	}
}

// TestPigeonholeSequence runs admin scripts (testdata/before) before a
// sample of the corpus scripts, and 9-after.sieve after them, as
// sieve_before and sieve_after scripts run, through RunAll and through
// sieve-test -s: the same actions for every sequence.
func TestPigeonholeSequence(t *testing.T) {
	o := pigeonhole.New(t)
	befores := readCorpus(t, "before")
	scripts := readCorpus(t, "scripts")
	msgs := readCorpus(t, "messages")
	after := befores["9-after.sieve"]
	delete(befores, "9-after.sieve")
	sample := func(m map[string][]byte, every int) []string {
		var names []string
		for n := range m {
			names = append(names, n)
		}
		sort.Strings(names)
		var out []string
		for i, n := range names {
			if i%every == 0 {
				out = append(out, n)
			}
		}
		return out
	}
	users, mnames := sample(scripts, 17), sample(msgs, 7)
	type job struct {
		names []string
		srcs  [][]byte
		mn    string
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	mismatches, runs := 0, 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				want, err := o.TestSequence(j.srcs, msgs[j.mn], corpusFrom, corpusTo)
				// sieve-test prints each script's actions; a keep
				// in two scripts is still one copy.
				want.Lines = uniqueLines(want.Lines)
				var got []string
				if err == nil {
					got, err = ourSequence(j.srcs, msgs[j.mn])
				}
				mu.Lock()
				runs++
				switch {
				case err != nil:
					t.Errorf("%v × %s: %v", j.names, j.mn, err)
				case !want.Compiled:
					t.Errorf("%v: sieve-test refuses:\n%s", j.names, want.Output)
				case strings.Join(got, "\n") != strings.Join(want.Lines, "\n"):
					mismatches++
					if mismatches <= 20 {
						t.Errorf("%v × %s:\n vmaild:     %q\n pigeonhole: %q", j.names, j.mn, got, want.Lines)
					}
				}
				mu.Unlock()
			}
		}()
	}
	for bn, b := range befores {
		for _, un := range users {
			for _, mn := range mnames {
				jobs <- job{[]string{bn, un}, [][]byte{b, scripts[un]}, mn}
				jobs <- job{[]string{bn, un, "9-after.sieve"}, [][]byte{b, scripts[un], after}, mn}
			}
		}
	}
	close(jobs)
	wg.Wait()
	if mismatches > 0 {
		t.Errorf("%d of %d sequences differ", mismatches, runs)
	}
}

func ourSequence(srcs [][]byte, msg []byte) ([]string, error) {
	var ss []*Script
	for _, src := range srcs {
		s, err := Compile(src, Options{})
		if err != nil {
			return nil, err
		}
		ss = append(ss, s)
	}
	m := ParseMessage(msg)
	res, err := RunAll(context.Background(), ss, corpusEnv(m), m)
	return normalise(res, err), nil
}

func uniqueLines(ls []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, l := range ls {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}

// mutantToken finds the tokens a mutation works on: strings, tags,
// identifiers, numbers, punctuation.
var mutantToken = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|:[a-z]+|[A-Za-z_][A-Za-z0-9_]*|\d+[KMG]?|[\[\](){},;]|\S`)

// mutantPieces are what a mutation inserts: arguments and commands that
// are valid somewhere, so most mutants are near misses.
var mutantPieces = []string{`:is`, `:contains`, `:matches`, `:value "gt"`, `:value "xx"`, `:count "eq"`,
	`:comparator "i;octet"`, `:comparator "i;ascii-numeric"`, `:all`, `:localpart`, `:domain`, `:user`,
	`:detail`, `:index 1`, `:index 0`, `:last`, `:copy`, `:create`, `:flags "x"`, `:flags`, `:days 2`,
	`:seconds 5`, `:mime`, `:raw`, `:text`, `:content "text"`, `:zone "+0100"`, `:originalzone`,
	`:percent`, `:over 5`, `:under 5`, `"str"`, `"${1}"`, `"${a.b}"`, `"a@b.c"`, `["a","b"]`, `5`, `5K`,
	`true`, `false`, `not`, `allof`, `anyof`, `(`, `)`, `{`, `}`, `;`, `,`, `[`, `]`, `stop`, `keep`,
	`discard`, "text:\n.\n", `redirect "x@y.z";`, `require "copy";`, `elsif true {}`, `else {}`,
	`set "a" "b";`, `string "a" "b"`, `exists "x"`, `header "a" "b"`, `size :over 1`, `envelope "to" "x"`,
	`body "x"`, `date "date" "year" "2020"`, `hasflag "x"`, `mailboxexists "x"`, `spamtest "1"`,
	`vacation "x";`, `reject "x";`, `fileinto "x";`, `addflag "x";`, `setflag "a" "b";`}

// TestPigeonholeMutants: scripts of the corpus with one to three tokens
// deleted, inserted or replaced (a fixed pseudo-random sequence) are
// accepted or refused by Compile as by sievec.
func TestPigeonholeMutants(t *testing.T) {
	o := pigeonhole.New(t)
	var srcs []string
	for _, dir := range []string{"scripts", "accepted"} {
		for _, b := range readCorpus(t, dir) {
			srcs = append(srcs, string(b))
		}
	}
	sort.Strings(srcs)
	rng := rand.New(rand.NewPCG(14, 5228))
	const n = 400
	bad := 0
	for i := range n {
		s := srcs[rng.IntN(len(srcs))]
		for range 1 + rng.IntN(3) {
			toks := mutantToken.FindAllStringIndex(s, -1)
			if len(toks) == 0 {
				break
			}
			tk := toks[rng.IntN(len(toks))]
			piece := mutantPieces[rng.IntN(len(mutantPieces))]
			switch rng.IntN(3) {
			case 0:
				s = s[:tk[0]] + s[tk[1]:]
			case 1:
				s = s[:tk[0]] + piece + " " + s[tk[0]:]
			default:
				s = s[:tk[0]] + piece + s[tk[1]:]
			}
		}
		ok, out, err := o.Check([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if _, cerr := Compile([]byte(s), Options{}); ok != (cerr == nil) {
			bad++
			t.Errorf("mutant %d: sievec accepts=%v, vmaild: %v\n%s\n%s", i, ok, cerr, s, out)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d mutants differ", bad, n)
	}
}
