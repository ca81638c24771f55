package dkim

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	msgauth "github.com/emersion/go-msgauth/dkim"
)

// TestKeygenRoundTrip writes a key of each algorithm, loads it back and
// checks that the record published for it verifies what it signs.
func TestKeygenRoundTrip(t *testing.T) {
	for _, alg := range []string{Ed25519, RSA} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			k, err := Generate(alg)
			if err != nil {
				t.Fatal(err)
			}
			path := KeyPath(dir, "Example.COM", "s1")
			if err := WriteKey(path, k); err != nil {
				t.Fatal(err)
			}
			if err := WriteKey(path, k); err == nil {
				t.Error("WriteKey overwrote an existing key")
			}
			st, _ := os.Stat(path)
			if st.Mode().Perm() != 0o600 {
				t.Errorf("mode %04o, want 0600", st.Mode().Perm())
			}
			keys, warns, err := LoadKeys(dir, nil)
			if err != nil || len(warns) != 0 || len(keys) != 1 || keys[0].Domain != "example.com" || keys[0].Selector != "s1" {
				t.Fatalf("LoadKeys: %v %v %v", keys, warns, err)
			}
			rec, err := Record(keys[0].Signer)
			if err != nil || !strings.HasPrefix(rec, "v=DKIM1; k="+alg+"; p=") {
				t.Fatalf("record %q, %v", rec, err)
			}
			line := ZoneLine("example.com", "s1", rec)
			if !strings.HasPrefix(line, `s1._domainkey.example.com. IN TXT "v=DKIM1; k=`+alg) {
				t.Errorf("zone line %q", line)
			}
			for _, part := range strings.Split(line, `"`) {
				if len(part) > 255 {
					t.Errorf("zone line string of %d bytes", len(part))
				}
			}
			s, err := New(Config{Keys: keys})
			if err != nil {
				t.Fatal(err)
			}
			msg := []byte("From: A <a@example.com>\r\nTo: b@other.test\r\nSubject: hi\r\n\r\nbody\r\n")
			sig, err := s.Sign(bytes.NewReader(msg), int64(len(msg)), nil)
			if err != nil || len(sig) == 0 {
				t.Fatalf("sign: %q %v", sig, err)
			}
			verify(t, append(sig, msg...), rec)
		})
	}
}

// verify checks a signed message with go-msgauth's verifier and the
// record; the independent check is cmd/vmaild's dkimverify test.
func verify(t *testing.T, msg []byte, record string) {
	t.Helper()
	vs, err := msgauth.VerifyWithOptions(bytes.NewReader(msg), &msgauth.VerifyOptions{
		LookupTXT: func(string) ([]string, error) { return []string{record}, nil },
	})
	if err != nil || len(vs) == 0 {
		t.Fatalf("verify: %v %v", vs, err)
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Errorf("signature by %s: %v", v.Domain, v.Err)
		}
	}
}

// TestHostileKeyFiles: a key others can read is used with a warning;
// anything that is not one usable private key is refused by name.
func TestHostileKeyFiles(t *testing.T) {
	ed, _ := Generate(Ed25519)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ed)
	good := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")})
	for _, tc := range []struct {
		name    string
		data    []byte
		mode    os.FileMode
		warn    bool
		refused string
	}{
		{"good", good, 0o600, false, ""},
		{"group readable", good, 0o640, true, ""},
		{"world readable", good, 0o644, true, ""},
		{"empty", nil, 0o600, false, "no PEM"},
		{"garbage", []byte("not a key\n"), 0o600, false, "no PEM"},
		{"certificate", cert, 0o600, false, "not a private key"},
		{"truncated", good[:len(good)/2], 0o600, false, "no PEM"},
		{"two keys", append(append([]byte{}, good...), good...), 0o600, false, "more than one"},
		{"bad DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), 0o600, false, "asn1"},
		{"huge", bytes.Repeat([]byte("A"), maxKeyFile+1), 0o600, false, "too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.key")
			if err := os.WriteFile(path, tc.data, tc.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, tc.mode)
			k, err := LoadKey(path)
			switch {
			case tc.refused != "":
				if err == nil || k != nil || !strings.Contains(err.Error(), tc.refused) {
					t.Errorf("LoadKey = %v, %v; want refused with %q", k, err, tc.refused)
				}
			case tc.warn:
				if k == nil || !errors.Is(err, ErrLooseMode) {
					t.Errorf("LoadKey = %v, %v; want the key and ErrLooseMode", k, err)
				}
			default:
				if k == nil || err != nil {
					t.Errorf("LoadKey = %v, %v", k, err)
				}
			}
		})
	}
	if _, err := LoadKey(filepath.Join(t.TempDir(), "missing.key")); err == nil {
		t.Error("a missing key loaded")
	}
	// A configured key that does not load fails LoadKeys as a whole.
	if _, _, err := LoadKeys(t.TempDir(), []KeySpec{{Domain: "example.com", Selector: "s1"}}); err == nil {
		t.Error("LoadKeys accepted a configured key that is missing")
	}
}

// TestSignChoosesKeys: the author domain picks the keys, every selector
// of it signs, and mail not from one of our domains is left alone.
func TestSignChoosesKeys(t *testing.T) {
	k1, _ := Generate(Ed25519)
	k2, _ := Generate(RSA)
	s, err := New(Config{Keys: []Key{{"example.com", "old", k2}, {"Example.com.", "new", k1}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Keys: []Key{{"a.test", "1", k1}, {"a.test", "2", k1}, {"a.test", "3", k1}}}); err == nil {
		t.Error("three selectors for one domain accepted")
	}
	if _, err := New(Config{Headers: []string{"Subject"}}); err == nil {
		t.Error("a header list without From accepted")
	}
	for _, tc := range []struct {
		name  string
		msg   string
		allow func(string) bool
		sigs  int
	}{
		{"ours", "From: a@example.com\r\n\r\nx\r\n", nil, 2},
		{"case and display name", "From: \"A, B\" <a@EXAMPLE.com>\r\n\r\nx\r\n", nil, 2},
		{"folded From", "From: A\r\n <a@example.com>\r\n\r\nx\r\n", nil, 2},
		{"other domain", "From: a@other.test\r\n\r\nx\r\n", nil, 0},
		{"not allowed", "From: a@example.com\r\n\r\nx\r\n", func(string) bool { return false }, 0},
		{"no From", "Subject: x\r\n\r\nx\r\n", nil, 0},
		{"two From fields", "From: a@example.com\r\nFrom: b@example.com\r\n\r\nx\r\n", nil, 0},
		{"two addresses", "From: a@example.com, b@example.com\r\n\r\nx\r\n", nil, 0},
		{"garbage From", "From: <<<\r\n\r\nx\r\n", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig, err := s.Sign(strings.NewReader(tc.msg), int64(len(tc.msg)), tc.allow)
			if err != nil {
				t.Fatal(err)
			}
			if n := bytes.Count(sig, []byte("DKIM-Signature:")); n != tc.sigs {
				t.Errorf("%d signatures, want %d:\n%s", n, tc.sigs, sig)
			}
		})
	}
	var nilSigner *Signer
	if sig, err := nilSigner.Sign(strings.NewReader("From: a@example.com\r\n\r\n"), 24, nil); sig != nil || err != nil {
		t.Errorf("nil signer: %q %v", sig, err)
	}
}

// TestHeaderCanonicalisation: with relaxed/relaxed a signature survives
// what relays do to a header (case of names, whitespace, rewrapping) and
// breaks on what they must not do (a second From, a changed Subject); with
// simple it breaks on the rewrapping too.
func TestHeaderCanonicalisation(t *testing.T) {
	key, _ := Generate(Ed25519)
	rec, _ := Record(key)
	orig := "From: Alice <alice@example.com>\r\nTo: bob@other.test\r\nSubject: Hello  there\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\nbody  text \r\n\r\n\r\n"
	for _, tc := range []struct {
		name, canon string
		change      func(string) string
		ok          bool
	}{
		{"unchanged", "relaxed/relaxed", func(m string) string { return m }, true},
		{"unchanged simple", "simple/simple", func(m string) string { return m }, true},
		{"name case", "relaxed/relaxed", func(m string) string { return strings.Replace(m, "Subject:", "SUBJECT:", 1) }, true},
		{"rewrapped", "relaxed/relaxed", func(m string) string { return strings.Replace(m, "Hello  there", "Hello\r\n\tthere", 1) }, true},
		{"rewrapped simple", "simple/simple", func(m string) string { return strings.Replace(m, "Hello  there", "Hello\r\n\tthere", 1) }, false},
		{"trailing blank lines", "relaxed/relaxed", func(m string) string { return m + "\r\n\r\n" }, true},
		{"body spaces", "relaxed/relaxed", func(m string) string { return strings.Replace(m, "body  text ", "body text", 1) }, true},
		{"second From on top", "relaxed/relaxed", func(m string) string { return "From: mallory@evil.test\r\n" + m }, false},
		{"second From below", "relaxed/relaxed", func(m string) string { return strings.Replace(m, "To:", "From: mallory@evil.test\r\nTo:", 1) }, false},
		{"Cc added", "relaxed/relaxed", func(m string) string { return strings.Replace(m, "To:", "Cc: x@evil.test\r\nTo:", 1) }, false},
		{"Subject changed", "relaxed/relaxed", func(m string) string { return strings.Replace(m, "Hello", "Win", 1) }, false},
		{"Received added", "relaxed/relaxed", func(m string) string { return "Received: from x by y\r\n" + m }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{Keys: []Key{{"example.com", "s", key}}, Canonicalization: tc.canon})
			if err != nil {
				t.Fatal(err)
			}
			sig, err := s.Sign(strings.NewReader(orig), int64(len(orig)), nil)
			if err != nil {
				t.Fatal(err)
			}
			signed := string(sig) + orig
			i := strings.Index(signed, "\r\nFrom: Alice") + 2
			got := signed[:i] + tc.change(signed[i:])
			vs, err := msgauth.VerifyWithOptions(strings.NewReader(got), &msgauth.VerifyOptions{
				LookupTXT: func(string) ([]string, error) { return []string{rec}, nil },
			})
			if err != nil || len(vs) != 1 {
				t.Fatalf("verify: %v %v", vs, err)
			}
			if ok := vs[0].Err == nil; ok != tc.ok {
				t.Errorf("verified %v (%v), want %v", ok, vs[0].Err, tc.ok)
			}
		})
	}
	for _, c := range []string{"relaxed", "simple/relaxed", ""} {
		if _, _, err := ParseCanonicalization(c); err != nil {
			t.Errorf("%q: %v", c, err)
		}
	}
	for _, c := range []string{"nofws", "relaxed/", "relaxed/simple/x"} {
		if _, _, err := ParseCanonicalization(c); err == nil {
			t.Errorf("%q accepted", c)
		}
	}
}

// TestKeySpecs reads the configuration's key names.
func TestKeySpecs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want KeySpec
		ok   bool
	}{
		{"Example.com:s1", KeySpec{"example.com", "s1", ""}, true},
		{"example.com:s1:/etc/dkim/a.pem", KeySpec{"example.com", "s1", "/etc/dkim/a.pem"}, true},
		{"example.com", KeySpec{}, false},
		{":s1", KeySpec{}, false},
		{"example.com:../x", KeySpec{}, false},
		{"example.com:a/b", KeySpec{}, false},
	} {
		got, err := ParseKeySpec(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%q: %+v, %v", tc.in, got, err)
		}
	}
}
