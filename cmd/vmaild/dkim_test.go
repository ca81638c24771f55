package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/vmaild/vmaild/backend/delivery"
	"github.com/vmaild/vmaild/backend/dkim"
	"github.com/vmaild/vmaild/backend/queue/queuetest"
	"github.com/vmaild/vmaild/internal/testsrv"
)

// zoneLine is one `vmaild dkim keygen|show` line: the record's name and
// its value with the DNS strings joined.
var zoneLine = regexp.MustCompile(`(?m)^(\S+\._domainkey\.\S+)\. IN TXT ((?:"[^"]*" ?)+)$`)

// publish puts the records printed by keygen or show into the test's DNS
// and returns them by name.
func publish(t *testing.T, dns *queuetest.DNS, out string) map[string]string {
	t.Helper()
	recs := map[string]string{}
	for _, m := range zoneLine.FindAllStringSubmatch(out, -1) {
		value := strings.ReplaceAll(strings.ReplaceAll(strings.TrimSpace(m[2]), `" "`, ""), `"`, "")
		recs[m[1]] = value
		if dns != nil {
			dns.TXT(m[1], value)
		}
	}
	if len(recs) == 0 {
		t.Fatalf("no TXT record in:\n%s", out)
	}
	return recs
}

// dkimVerify checks the signature at index of msg with Debian's
// python3-dkim (dkimpy's dkimverify), its keys looked up in the test's DNS
// server: dkimverify asks dnspython's default resolver, which reads
// /etc/resolv.conf (no port there), so the same program runs with that
// resolver pointed at the loopback server first.
func dkimVerify(t *testing.T, dnsAddr string, msg []byte, index int) (bool, string) {
	t.Helper()
	bin := testsrv.RequireBinary(t, "dkimverify")
	head, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	python := "python3"
	if first, _, _ := bytes.Cut(head, []byte("\n")); bytes.HasPrefix(first, []byte("#!")) {
		if f := strings.Fields(string(first[2:])); len(f) == 1 { // #!/usr/bin/python3, not #!/usr/bin/env …
			python = f[0]
		}
	}
	host, port, _ := strings.Cut(dnsAddr, ":")
	script := fmt.Sprintf(`import sys, dns.resolver
r = dns.resolver.Resolver(configure=False)
r.nameservers = [%q]
r.port = %s
dns.resolver.default_resolver = r
from dkim.dkimverify import main
sys.argv = ["dkimverify", "--index", %q]
main()
`, host, port, fmt.Sprint(index))
	cmd := exec.Command(python, "-c", script)
	cmd.Stdin = bytes.NewReader(msg)
	out, err := cmd.CombinedOutput()
	return err == nil && strings.Contains(string(out), "signature ok"), string(out)
}

// TestServeDKIMVerified: keys made with `vmaild dkim keygen` (ed25519 and
// RSA for the user's domain, both signing as in a rotation; ed25519 for
// the host name, the bounces' From) and published in a loopback DNS
// server; a message submitted by an authenticated user reaches a remote
// sink with both signatures, and the bounce for the recipient the sink
// refused is signed too: dkimpy verifies each.
func TestServeDKIMVerified(t *testing.T) {
	dns := queuetest.NewDNS(t)
	refused := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	sink := queuetest.NewSink(t, queuetest.SinkOptions{Rcpt: func(rcpt string) error {
		if strings.HasPrefix(rcpt, "nobody@") {
			return refused
		}
		return nil
	}})
	dns.MX("remote.test", 10, "mx.remote.test")
	dns.A("mx.remote.test", "127.0.0.1")
	d := newDaemon(t, fmt.Sprintf("queue:\n  resolver: %s\n  port: %d\n", dns.Addr, sink.Port))

	made := d.cli("", "dkim", "keygen", "example.com", "--selector", "ed", "--algorithm", "ed25519")
	made += d.cli("", "dkim", "keygen", "example.com", "--selector", "rsa", "--algorithm", "rsa")
	made += d.cli("", "dkim", "keygen", "mx.example.com", "--selector", "dsn")
	recs := publish(t, dns, made)
	if !strings.Contains(recs["ed._domainkey.example.com"], "k=ed25519;") || !strings.Contains(recs["rsa._domainkey.example.com"], "k=rsa;") {
		t.Fatalf("records: %v", recs)
	}
	shown := publish(t, nil, d.cli("", "dkim", "show", "example.com"))
	if len(shown) != 2 || shown["ed._domainkey.example.com"] != recs["ed._domainkey.example.com"] || shown["rsa._domainkey.example.com"] != recs["rsa._domainkey.example.com"] {
		t.Errorf("dkim show gave %v, keygen %v", shown, recs)
	}
	key := filepath.Join(filepath.Dir(d.config), "data", "dkim", "example.com", "rsa.key")
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file %s: %v %v, want mode 0600", key, st, err)
	}
	if out := d.cli("", "config", "check"); !strings.Contains(out, "2 domains sign: example.com, mx.example.com") {
		t.Errorf("config check does not report the keys:\n%s", out)
	}

	d.start()
	d.cli("", "domain", "add", "example.com")
	d.cli("zoe-secret\n", "user", "add", "zoe@example.com", "--password-stdin")
	msg := "From: Zoe <zoe@example.com>\r\nTo: friend@remote.test\r\nSubject: signed  mail\r\n" +
		"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <dkim-1@example.com>\r\n\r\nHello \xc3\xa9t\xc3\xa9\r\n.leading dot\r\n\r\n\r\n"
	if err := sendMail(t, d.addr("submission"), &[2]string{"zoe@example.com", "zoe-secret"}, "zoe@example.com",
		[]string{"friend@remote.test", "nobody@remote.test"}, msg); err != nil {
		t.Fatalf("submission: %v", err)
	}
	got := sink.Wait(t, 1)[0].Data
	if n := bytes.Count(got, []byte("DKIM-Signature:")); n != 2 {
		t.Fatalf("%d signatures, want 2 (ed25519 and RSA):\n%s", n, got)
	}
	for i := range 2 {
		if ok, out := dkimVerify(t, dns.Addr, got, i); !ok {
			t.Errorf("signature %d does not verify: %s\n%s", i, out, got)
		}
	}
	for _, a := range []string{"a=ed25519-sha256", "a=rsa-sha256"} {
		if !bytes.Contains(got, []byte(a)) {
			t.Errorf("no %s signature", a)
		}
	}
	// What a relay may not do breaks it: a second From on top.
	if ok, _ := dkimVerify(t, dns.Addr, append([]byte("From: ceo@example.com\r\n"), got...), 0); ok {
		t.Error("a message with a From added still verifies (From is not oversigned)")
	}

	// The bounce for nobody@ goes to zoe's mailbox, signed by the host.
	var dsn []byte
	maildir := filepath.Join(filepath.Dir(d.config), "data", "mail", "example.com", "zoe", "Maildir", "new", "*")
	waitFor(t, d, "the bounce in zoe's mailbox", func() bool {
		files, _ := filepath.Glob(maildir)
		for _, f := range files {
			if m, err := os.ReadFile(f); err == nil && bytes.Contains(m, []byte("multipart/report")) {
				dsn = m
				return true
			}
		}
		return false
	})
	if !bytes.Contains(dsn, []byte("d=mx.example.com")) {
		t.Fatalf("bounce not signed by mx.example.com:\n%s", dsn)
	}
	if ok, out := dkimVerify(t, dns.Addr, dsn, 0); !ok {
		t.Errorf("the bounce's signature does not verify: %s\n%s", out, dsn)
	}

	// Reload reads the keys again; a key that does not load keeps the
	// old ones signing.
	bad := filepath.Join(filepath.Dir(key), "broken.key")
	os.WriteFile(bad, []byte("garbage\n"), 0o600)
	if out := d.cli("", "reload"); !strings.Contains(out, "dkim: kept the old keys") || !strings.Contains(out, "broken") {
		t.Errorf("reload with a broken key:\n%s", out)
	}
	os.Remove(bad)
	d.cli("", "dkim", "keygen", "new.test", "--selector", "n1")
	if out := d.cli("", "reload"); !strings.Contains(out, "dkim: reloaded, 3 domains sign") {
		t.Errorf("reload with a new key:\n%s", out)
	}
	d.stop()
}

// TestDKIMCommands: keygen refuses to overwrite a key and a bad
// algorithm or selector; show names a domain without keys; a configured
// key that is missing or garbage fails config check and the start.
func TestDKIMCommands(t *testing.T) {
	d := newDaemon(t, "")
	d.cli("", "dkim", "keygen", "example.com", "--selector", "s1")
	for _, args := range [][]string{
		{"dkim", "keygen", "example.com", "--selector", "s1"},
		{"dkim", "keygen", "example.com", "--algorithm", "dsa"},
		{"dkim", "keygen", "example.com", "--selector", "../x"},
		{"dkim", "show", "other.test"},
	} {
		out, err := exec.Command(d.bin, append([]string{"-c", d.config}, args...)...).CombinedOutput()
		if err == nil {
			t.Errorf("vmaild %s succeeded:\n%s", strings.Join(args, " "), out)
		}
	}
	// A key file others may read is used, with a warning.
	key := filepath.Join(filepath.Dir(d.config), "data", "dkim", "example.com", "s1.key")
	os.Chmod(key, 0o644)
	if out := d.cli("", "dkim", "show", "example.com"); !strings.Contains(out, "warning:") || !strings.Contains(out, "s1._domainkey.example.com.") {
		t.Errorf("loose key file: %s", out)
	}
	// Garbage in the key folder stops the start, named.
	os.WriteFile(filepath.Join(filepath.Dir(key), "s2.key"), []byte("garbage\n"), 0o600)
	out, err := exec.Command(d.bin, "-c", d.config, "config", "check").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "s2") {
		t.Errorf("config check with a garbage key: %v\n%s", err, out)
	}
	out, err = exec.Command(d.bin, "-c", d.config, "serve").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no PEM private key") {
		t.Errorf("serve with a garbage key: %v\n%s", err, out)
	}
}

// TestSignSubmittedDomains: submitted mail is signed only by the domain
// of its envelope sender or of the login, even when the From header
// (smtp.check_header_from off) names another hosted domain.
func TestSignSubmittedDomains(t *testing.T) {
	var keys []dkim.Key
	for _, d := range []string{"example.com", "other.test"} {
		k, err := dkim.Generate(dkim.Ed25519)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, dkim.Key{Domain: d, Selector: "s", Signer: k})
	}
	signer, err := dkim.New(dkim.Config{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	sign := signSubmitted(func() *dkim.Signer { return signer })
	for _, tc := range []struct {
		name, from, user, header string
		signed                   bool
	}{
		{"own domain", "zoe@example.com", "zoe@example.com", "zoe@example.com", true},
		{"login's domain, other sender", "list@bounces.test", "zoe@example.com", "zoe@example.com", true},
		{"sender's domain", "info@other.test", "zoe@example.com", "info@other.test", true},
		{"another customer's domain", "zoe@example.com", "zoe@example.com", "ceo@other.test", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := bytes.NewReader([]byte("From: " + tc.header + "\r\nSubject: x\r\n\r\nbody\r\n"))
			env := &delivery.Envelope{From: tc.from, User: tc.user}
			sig, err := sign(context.Background(), env, readerMessage{msg})
			if err != nil {
				t.Fatal(err)
			}
			if signed := len(sig) > 0; signed != tc.signed {
				t.Errorf("signed %v, want %v", signed, tc.signed)
			}
		})
	}
}

type readerMessage struct{ *bytes.Reader }

func (m readerMessage) Size() int64 { return m.Reader.Size() }
