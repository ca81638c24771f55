package srs

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// vectorTime is the clock of postsrsd's own unit test (2020-01-01 00:01:00
// UTC), whose published vector TestPublishedVector checks.
var vectorTime = time.Unix(1577836860, 0)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func newRewriter(t testing.TB, c Config) *Rewriter {
	t.Helper()
	if c.Domain == "" {
		c.Domain = "example.com"
	}
	if c.Secrets == nil {
		c.Secrets = []string{"tops3cr3t"}
	}
	if c.Now == nil {
		c.Now = fixedClock(vectorTime)
	}
	r, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPublishedVector is postsrsd's unit-test vector (tests/unit/
// test_srs2.c): secret tops3cr3t, domain example.com, at 2020-01-01.
func TestPublishedVector(t *testing.T) {
	r := newRewriter(t, Config{})
	got, err := r.Forward("test@otherdomain.com")
	if err != nil {
		t.Fatal(err)
	}
	const want = "SRS0=vmyz=2W=otherdomain.com=test@example.com"
	if got != want {
		t.Fatalf("Forward = %q, want %q", got, want)
	}
	back, err := r.Reverse(want)
	if err != nil || back != "test@otherdomain.com" {
		t.Fatalf("Reverse = %q, %v", back, err)
	}
	// Same day, other case: the hash is over lower-cased fields.
	if back, err := r.Reverse("srs0=VMYZ=2w=OtherDomain.com=test@EXAMPLE.com"); err != nil || back != "test@OtherDomain.com" {
		t.Fatalf("Reverse of the case-folded address = %q, %v", back, err)
	}
}

func TestForwardNotRewritten(t *testing.T) {
	r := newRewriter(t, Config{})
	for _, sender := range []string{"", "<>", "bob@example.com", "bob@EXAMPLE.COM", "SRS0=vmyz=2W=otherdomain.com=test@example.com"} {
		got, err := r.Forward(sender)
		if err != nil || got != sender {
			t.Errorf("Forward(%q) = %q, %v; want it unchanged", sender, got, err)
		}
	}
	for _, sender := range []string{"nodomain", "@example.org", "user@", "user@a=b.example", "user@[192.0.2.1]",
		"a b@example.org", strings.Repeat("a", MaxAddressLength) + "@x.org",
		strings.Repeat("a", MaxAddressLength-30) + "@x.org", // fits, but not once rewritten
	} {
		if got, err := r.Forward(sender); !errors.Is(err, ErrMalformed) {
			t.Errorf("Forward(%q) = %q, %v; want ErrMalformed", sender, got, err)
		}
	}
}

// TestGuarded follows a message through three forwarders: the second and
// third write SRS1 addresses that point back at the first, and each
// reverses only to the first forwarder's SRS0 address, which the first
// reverses to the sender.
func TestGuarded(t *testing.T) {
	first := newRewriter(t, Config{Domain: "first.example", Secrets: []string{"one"}})
	second := newRewriter(t, Config{Domain: "second.example", Secrets: []string{"two"}, Separator: "+"})
	third := newRewriter(t, Config{Domain: "third.example", Secrets: []string{"three"}, Separator: "-"})

	s0, err := first.Forward("Alice.Smith=x@origin.example")
	if err != nil {
		t.Fatal(err)
	}
	s1, err := second.Forward(s0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s1, "SRS1+") || !strings.Contains(s1, "=first.example==") || !strings.HasSuffix(s1, "@second.example") {
		t.Fatalf("second forward = %q", s1)
	}
	s2, err := third.Forward(s1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s2, "SRS1-") || !strings.Contains(s2, "=first.example==") || !strings.HasSuffix(s2, "@third.example") {
		t.Fatalf("third forward = %q", s2)
	}
	for _, c := range []struct {
		r    *Rewriter
		addr string
	}{{third, s2}, {second, s1}} {
		back, err := c.r.Reverse(c.addr)
		if err != nil || back != s0 {
			t.Fatalf("%s: Reverse(%q) = %q, %v; want %q", c.r.Domain(), c.addr, back, err, s0)
		}
	}
	if _, err := second.Reverse(s2); !errors.Is(err, ErrForged) {
		t.Fatalf("second reversing third's address: %v, want ErrForged", err)
	}
	back, err := first.Reverse(s0)
	if err != nil || back != "Alice.Smith=x@origin.example" {
		t.Fatalf("first Reverse = %q, %v", back, err)
	}
}

func TestAge(t *testing.T) {
	day := 24 * time.Hour
	base := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	writer := newRewriter(t, Config{Now: fixedClock(base)})
	addr, err := writer.Forward("user@origin.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		at   time.Time
		max  int
		want error
	}{
		{"same day", base, 0, nil},
		{"last second of the 21st day", base.Truncate(day).Add(22*day - time.Second), 0, nil},
		{"22nd day", base.Add(22 * day), 0, ErrExpired},
		{"max age 1 after 1 day", base.Add(day), 1, nil},
		{"max age 1 after 2 days", base.Add(2 * day), 1, ErrExpired},
		{"a day before it was written", base.Add(-day), 0, ErrExpired},
		{"one 1024-day cycle later", base.Add(1024 * day), 0, nil}, // the stamp wraps, as everywhere
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRewriter(t, Config{Now: fixedClock(c.at), MaxAgeDays: c.max})
			_, err := r.Reverse(addr)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("Reverse at %v: %v, want %v", c.at, err, c.want)
			}
		})
	}
	// Wrapping across day 1023 → 0 of the cycle.
	wrapAt := time.Unix((1024*20+1023)*secondsADay, 0)
	w := newRewriter(t, Config{Now: fixedClock(wrapAt)})
	a, _ := w.Forward("user@origin.example")
	if _, err := newRewriter(t, Config{Now: fixedClock(wrapAt.Add(3 * day))}).Reverse(a); err != nil {
		t.Fatalf("reverse across the cycle's wrap: %v", err)
	}
}

func TestSecretRotation(t *testing.T) {
	old := newRewriter(t, Config{Secrets: []string{"old secret"}})
	addr, _ := old.Forward("user@origin.example")
	rotated := newRewriter(t, Config{Secrets: []string{"new secret", "old secret"}})
	if back, err := rotated.Reverse(addr); err != nil || back != "user@origin.example" {
		t.Fatalf("old address after rotation: %q, %v", back, err)
	}
	fresh, _ := rotated.Forward("user@origin.example")
	if _, err := old.Reverse(fresh); !errors.Is(err, ErrForged) {
		t.Fatalf("the new secret must sign: old rewriter reversed %q (%v)", fresh, err)
	}
	dropped := newRewriter(t, Config{Secrets: []string{"new secret"}})
	if _, err := dropped.Reverse(addr); !errors.Is(err, ErrForged) {
		t.Fatalf("address of a dropped secret: %v, want ErrForged", err)
	}
}

// TestReverseHostile is input from the world: RCPT TO of anyone who wants
// us to relay.
func TestReverseHostile(t *testing.T) {
	r := newRewriter(t, Config{})
	good := "SRS0=vmyz=2W=otherdomain.com=test@example.com"
	for _, c := range []struct {
		name, addr string
		want       error
	}{
		{"plain address", "test@example.com", ErrNotSRS},
		{"SRS2 tag", "SRS2=vmyz=2W=otherdomain.com=test@example.com", ErrNotSRS},
		{"bad separator", "SRS0.vmyz=2W=otherdomain.com=test@example.com", ErrNotSRS},
		{"tag only", "SRS0=@example.com", ErrMalformed},
		{"short", "SRS0@example.com", ErrNotSRS},
		{"empty", "", ErrNotSRS},
		{"forged hash", "SRS0=abcd=2W=otherdomain.com=test@example.com", ErrForged},
		{"hash of another sender", "SRS0=vmyz=2W=otherdomain.com=admin@example.com", ErrForged},
		{"other domain", "SRS0=vmyz=2W=evil.example=test@example.com", ErrForged},
		{"changed timestamp", "SRS0=vmyz=2X=otherdomain.com=test@example.com", ErrForged},
		{"hash too short", "SRS0=vmy=2W=otherdomain.com=test@example.com", ErrMalformed},
		{"empty hash", "SRS0==2W=otherdomain.com=test@example.com", ErrMalformed},
		{"hash not base64", "SRS0=vm.z=2W=otherdomain.com=test@example.com", ErrMalformed},
		{"no timestamp", "SRS0=vmyz==otherdomain.com=test@example.com", ErrMalformed},
		{"timestamp too long", "SRS0=vmyz=2WA=otherdomain.com=test@example.com", ErrMalformed},
		{"timestamp not base32", "SRS0=vmyz=21=otherdomain.com=test@example.com", ErrMalformed},
		{"no domain", "SRS0=vmyz=2W==test@example.com", ErrMalformed},
		{"no user", "SRS0=vmyz=2W=otherdomain.com=@example.com", ErrMalformed},
		{"missing fields", "SRS0=vmyz=2W@example.com", ErrMalformed},
		{"oversized", "SRS0=vmyz=2W=otherdomain.com=" + strings.Repeat("x", MaxAddressLength) + "@example.com", ErrMalformed},
		{"SRS1 missing parts", "SRS1=abcd=first.example@example.com", ErrMalformed},
		{"SRS1 empty forwarder", "SRS1=abcd===x=2W=a.b=c@example.com", ErrMalformed},
		{"SRS1 no separator after forwarder", "SRS1=abcd=first.example=xyz@example.com", ErrMalformed},
		{"SRS1 forged", "SRS1=abcd=first.example==HHHH=2W=a.b=c@example.com", ErrForged},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := r.Reverse(c.addr)
			if !errors.Is(err, c.want) {
				t.Fatalf("Reverse(%q) = %q, %v; want %v", c.addr, got, err, c.want)
			}
		})
	}
	// Longer hashes are read up to the hash length, as postsrsd does, and
	// the base64 and base64url spellings are the same hash.
	for _, addr := range []string{
		good,
		"SRS0=vmyzXYZ=2W=otherdomain.com=test@example.com",
		"SRS0+vmyz=2W=otherdomain.com=test@example.com",
		"SRS0-VmYz=2w=otherdomain.com=test@example.com",
	} {
		if back, err := r.Reverse(addr); err != nil || back != "test@otherdomain.com" {
			t.Errorf("Reverse(%q) = %q, %v", addr, back, err)
		}
	}
}

// TestBase64Alphabets: a hash holding "-" or "_" (what we write) verifies
// when spelled with "+" or "/" (what older writers used), in any case.
func TestBase64Alphabets(t *testing.T) {
	r := newRewriter(t, Config{})
	n := 0
	for i := 0; i < 2000 && n < 5; i++ {
		sender := "u" + strings.Repeat("x", i%7) + "@d" + strconv.Itoa(i) + ".example"
		addr, err := r.Forward(sender)
		if err != nil {
			t.Fatal(err)
		}
		hash := addr[5:9]
		if !strings.ContainsAny(hash, "-_") {
			continue
		}
		n++
		std := strings.NewReplacer("-", "+", "_", "/").Replace(hash)
		for _, h := range []string{hash, std, strings.ToUpper(std), strings.ToLower(hash)} {
			a := addr[:5] + h + addr[9:]
			if back, err := r.Reverse(a); err != nil || back != sender {
				t.Fatalf("Reverse(%q) = %q, %v; want %q", a, back, err, sender)
			}
		}
	}
	if n == 0 {
		t.Fatal("no hash with - or _ among the samples")
	}
}

func TestOwns(t *testing.T) {
	r := newRewriter(t, Config{})
	for addr, want := range map[string]bool{
		"SRS0=vmyz=2W=otherdomain.com=test@example.com":  true,
		"srs1+abcd=a.b==x@EXAMPLE.COM":                   true,
		"SRS0=vmyz=2W=otherdomain.com=test@example.org":  false,
		"test@example.com":                               false,
		"SRS0=vmyz=2W=otherdomain.com=test":              false,
		"SRS0=vmyz=2W=otherdomain.com=test@example.com.": true,
	} {
		if got := r.Owns(addr); got != want {
			t.Errorf("Owns(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, c := range []Config{
		{Secrets: []string{"s"}},
		{Domain: "example.com"},
		{Domain: "example.com", Secrets: []string{""}},
		{Domain: "a@b", Secrets: []string{"s"}},
		{Domain: "example.com", Secrets: []string{"s"}, Separator: "#"},
		{Domain: "example.com", Secrets: []string{"s"}, MaxAgeDays: 1024},
		{Domain: "example.com", Secrets: []string{"s"}, MaxAgeDays: -1},
		{Domain: "example.com", Secrets: []string{"s"}, HashLength: 28},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestHashLength(t *testing.T) {
	r := newRewriter(t, Config{HashLength: 8})
	addr, _ := r.Forward("test@otherdomain.com")
	if h := addr[5 : strings.IndexByte(addr[5:], '=')+5]; len(h) != 8 || !strings.HasPrefix(addr, "SRS0=vmyz") {
		t.Fatalf("8-character hash: %q", addr)
	}
	if _, err := r.Reverse("SRS0=vmyz=2W=otherdomain.com=test@example.com"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a 4-character hash under hash length 8: %v, want ErrMalformed", err)
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "srs.secret")
	// Created on first use, 0600, by one of several starting at once.
	var wg sync.WaitGroup
	got := make([][]string, 4)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := ReadSecretFile(path)
			if err != nil {
				t.Error(err)
			}
			got[i] = s
		}()
	}
	wg.Wait()
	for _, s := range got[1:] {
		if len(s) != 1 || s[0] != got[0][0] || len(s[0]) < 40 {
			t.Fatalf("secrets read at once differ or are short: %q", got)
		}
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode: %v, %v", st.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".srs-secret-*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	// postsrsd's format: one a line, first signs, CRLF tolerated.
	if err := os.WriteFile(path, []byte("new\r\n\nold one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := ReadSecretFile(path)
	if err != nil || len(s) != 2 || s[0] != "new" || s[1] != "old one" {
		t.Fatalf("ReadSecretFile = %q, %v", s, err)
	}
	if err := os.WriteFile(path, []byte("\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSecretFile(path); err == nil {
		t.Fatal("a file of empty lines was accepted")
	}
}
