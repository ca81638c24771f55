package sieve

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func addSeeds(f *testing.F, dirs ...string) [][]byte {
	var out [][]byte
	for _, d := range dirs {
		names, _ := filepath.Glob(filepath.Join("testdata", d, "*"))
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

const fuzzMessage = "From: a@example.org\nTo: b+x@example.com\nSubject: =?utf-8?q?h=C3=A9llo?= *?\\\nDate: Tue, 01 Jul 2025 10:52:37 +0200\n\nbody\n"

// FuzzCompile: any input compiles or is refused with an *Error, never a
// panic; what compiles runs within its limits.
func FuzzCompile(f *testing.F) {
	for _, s := range addSeeds(f, "scripts", "invalid", "accepted") {
		f.Add(s)
	}
	msg := ParseMessage([]byte(fuzzMessage))
	f.Fuzz(func(t *testing.T, src []byte) {
		defer watchdog()()
		s, err := Compile(src, Options{Limits: Limits{MaxRunTime: time.Second}})
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Compile error %T %v, want *Error", err, err)
			}
			return
		}
		res, err := s.Run(context.Background(), Env{From: "s@example.net", To: "b+x@example.com"}, msg)
		checkResult(t, res, err)
	})
}

// FuzzRun: any message (and script) runs to a result, never a panic.
func FuzzRun(f *testing.F) {
	scripts := addSeeds(f, "scripts")
	msgs := addSeeds(f, "messages")
	for i, s := range scripts {
		f.Add(s, msgs[i%len(msgs)])
	}
	f.Fuzz(func(t *testing.T, src, raw []byte) {
		defer watchdog()()
		s, err := Compile(src, Options{Limits: Limits{MaxRunTime: time.Second}})
		if err != nil {
			return
		}
		m := ParseMessage(raw)
		res, err := s.Run(context.Background(), Env{From: "s@example.net", To: "me@example.com"}, m)
		checkResult(t, res, err)
	})
}

func checkResult(t *testing.T, res *Result, err error) {
	t.Helper()
	if res == nil {
		t.Fatalf("Run returned no result (err %v)", err)
	}
	if err != nil {
		var re *RuntimeError
		if !errors.As(err, &re) {
			t.Fatalf("Run error %T %v, want *RuntimeError", err, err)
		}
		if !res.ImplicitKeep || len(res.Actions) != 0 {
			t.Fatalf("result after a runtime error = %+v", res)
		}
		return
	}
	for _, a := range res.Actions {
		if a.Kind < Keep || a.Kind > Vacation {
			t.Fatalf("action of kind %v", a.Kind)
		}
	}
}

// watchdog crashes the fuzzing process when one input takes far longer
// than the run limit, so the fuzzer keeps that input as a finding: a run
// must be bounded, and so must compiling and reading the message.
func watchdog() func() {
	t := time.AfterFunc(10*time.Second, func() { panic("one input took longer than 10s") })
	return func() { t.Stop() }
}
