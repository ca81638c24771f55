package senderauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"

	"github.com/vmaild/vmaild/backend/dnsclient"
	"github.com/vmaild/vmaild/backend/queue/queuetest"
	"github.com/vmaild/vmaild/internal/testsrv"
)

// client is the address every test message comes from.
var client = netip.MustParseAddr("192.0.2.1")

// world is a loopback DNS server publishing the domains the tests use:
// each SPF result has a domain, each DMARC policy a domain whose SPF
// fails, and one DKIM key.
type world struct {
	dns     *queuetest.DNS
	checker *Checker
	keyFile string
}

var (
	keyOnce sync.Once
	key     *rsa.PrivateKey
)

func newWorld(t *testing.T) *world {
	t.Helper()
	keyOnce.Do(func() {
		var err error
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	d := queuetest.NewDNS(t)
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "dkim.key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub)
	d.TXT("sel._domainkey.signer.test", rec)
	d.TXT("sel._domainkey.other.test", rec)
	d.TXT("bad._domainkey.signer.test", "v=DKIM1; k=rsa; p=!!!notbase64")
	d.TXT("rev._domainkey.signer.test", "v=DKIM1; k=rsa; p=")
	d.ServFail("down._domainkey.signer.test", true)

	d.TXT("signer.test", "v=spf1 -all")
	d.TXT("_dmarc.signer.test", "v=DMARC1; p=reject")
	d.TXT("pass.test", "v=spf1 ip4:192.0.2.0/24 -all")
	d.TXT("_dmarc.pass.test", "v=DMARC1; p=reject; aspf=s")
	d.TXT("fail.test", "v=spf1 ip4:198.51.100.1 -all")
	d.TXT("soft.test", "v=spf1 ~all")
	d.TXT("neutral.test", "v=spf1 ?all")
	d.A("nospf.test", "198.51.100.7")
	d.TXT("mx.test", "v=spf1 mx -all")
	d.MX("mx.test", 10, "mail.mx.test")
	d.A("mail.mx.test", "192.0.2.1")
	d.ServFail("temp.test", true)
	d.TXT("perm.test", "v=spf1 ip4:not-an-ip -all")
	d.TXT("two.test", "v=spf1 -all")
	d.TXT("two.test", "v=spf1 +all")
	for _, p := range []string{"none", "quarantine", "reject"} {
		d.TXT(p+".test", "v=spf1 -all")
		d.TXT("_dmarc."+p+".test", "v=DMARC1; p="+p)
	}
	d.TXT("org.test", "v=spf1 -all")
	d.TXT("_dmarc.org.test", "v=DMARC1; p=none; sp=reject")
	d.TXT("sub.org.test", "v=spf1 -all")
	d.TXT("sampled.test", "v=spf1 -all")
	d.TXT("_dmarc.sampled.test", "v=DMARC1; p=reject; pct=0")
	d.ServFail("_dmarc.tempdmarc.test", true)
	d.TXT("tempdmarc.test", "v=spf1 -all")

	r, err := dnsclient.New(d.Addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return &world{dns: d, keyFile: keyFile, checker: &Checker{Resolver: r, AuthServID: "mx.example.net", DMARCReject: Reject}}
}

func message(from, body string) []byte {
	return []byte("From: <" + from + ">\r\nTo: <u@example.net>\r\nSubject: test\r\nDate: Thu, 3 Dec 2026 15:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\n" + body)
}

// sign has python3-dkim's dkimsign sign msg for domain with selector.
func (w *world) sign(t *testing.T, msg []byte, selector, domain string) []byte {
	t.Helper()
	bin := testsrv.RequireBinary(t, "dkimsign")
	cmd := exec.Command(bin, selector, domain, w.keyFile)
	cmd.Stdin = bytes.NewReader(msg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dkimsign: %v: %s", err, stderr.String())
	}
	if !bytes.HasPrefix(out, []byte("DKIM-Signature:")) {
		t.Fatalf("dkimsign wrote %q", out)
	}
	return out
}

func (w *world) check(mailFrom string, msg []byte) Result {
	in := Input{IP: client, Helo: "client.test", MailFrom: mailFrom, Message: bytes.NewReader(msg), Size: int64(len(msg))}
	return w.checker.Evaluate(context.Background(), in)
}

// TestSPF: one domain per RFC 7208 result, all answered by the loopback
// DNS server.
func TestSPF(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		from string
		want authres.ResultValue
	}{
		{"a@pass.test", authres.ResultPass},
		{"a@mx.test", authres.ResultPass},
		{"a@fail.test", authres.ResultFail},
		{"a@soft.test", authres.ResultSoftFail},
		{"a@neutral.test", authres.ResultNeutral},
		{"a@nospf.test", authres.ResultNone},
		{"a@nxdomain.test", authres.ResultNone},
		{"a@temp.test", authres.ResultTempError},
		{"a@perm.test", authres.ResultPermError},
		{"a@two.test", authres.ResultPermError},
	} {
		t.Run(tc.from, func(t *testing.T) {
			res := w.check(tc.from, message(tc.from, "hi\r\n"))
			if res.SPF != tc.want {
				t.Errorf("spf=%s (%s), want %s", res.SPF, res.SPFReason, tc.want)
			}
		})
	}
}

// TestSPFHelo: the null sender is checked against the HELO name.
func TestSPFHelo(t *testing.T) {
	w := newWorld(t)
	msg := message("a@pass.test", "x\r\n")
	in := Input{IP: client, Helo: "pass.test", Message: bytes.NewReader(msg), Size: int64(len(msg))}
	res := w.checker.Evaluate(context.Background(), in)
	if res.SPF != authres.ResultPass || !res.SPFHelo || res.SPFDomain != "pass.test" {
		t.Errorf("null sender: %+v", res)
	}
	if h := "Authentication-Results: " + w.checker.HeaderValue(in, res); !strings.Contains(h, "smtp.helo=pass.test") {
		t.Errorf("header %q lacks smtp.helo", h)
	}
}

// TestDKIM: signatures made by dkimpy verify; a changed body fails; an
// unsigned message has none.
func TestDKIM(t *testing.T) {
	w := newWorld(t)
	signed := w.sign(t, message("a@signer.test", "Hello, world.\r\n"), "sel", "signer.test")

	res := w.check("a@signer.test", signed)
	if len(res.DKIM) != 1 || res.DKIM[0].Result != authres.ResultPass || res.DKIM[0].Domain != "signer.test" {
		t.Fatalf("signed: %+v", res.DKIM)
	}
	// SPF fails (-all) but the aligned signature passes DMARC.
	if res.DMARC != authres.ResultPass || res.Action != Accept {
		t.Errorf("signed: dmarc=%s action=%s", res.DMARC, res.Action)
	}

	tampered := bytes.Replace(signed, []byte("Hello, world."), []byte("Hello, werld."), 1)
	res = w.check("a@signer.test", tampered)
	if len(res.DKIM) != 1 || res.DKIM[0].Result != authres.ResultFail {
		t.Fatalf("tampered: %+v", res.DKIM)
	}
	if res.DMARC != authres.ResultFail || res.Action != Reject {
		t.Errorf("tampered: dmarc=%s action=%s", res.DMARC, res.Action)
	}

	res = w.check("a@pass.test", message("a@pass.test", "plain\r\n"))
	if len(res.DKIM) != 0 {
		t.Errorf("unsigned: %+v", res.DKIM)
	}
	h := "Authentication-Results: " + w.checker.HeaderValue(Input{MailFrom: "a@pass.test"}, res)
	if !strings.Contains(h, "dkim=none") {
		t.Errorf("unsigned header %q", h)
	}

	// A valid signature by a domain unrelated to From passes DKIM but
	// does not align.
	other := w.sign(t, message("a@reject.test", "x\r\n"), "sel", "other.test")
	res = w.check("a@reject.test", other)
	if len(res.DKIM) != 1 || res.DKIM[0].Result != authres.ResultPass || res.DMARC != authres.ResultFail {
		t.Errorf("unaligned: dkim=%+v dmarc=%s", res.DKIM, res.DMARC)
	}
}

// TestDKIMMalformed: broken signature fields and key records give fail,
// permerror or temperror, never a panic or pass.
func TestDKIMMalformed(t *testing.T) {
	w := newWorld(t)
	signed := w.sign(t, message("a@signer.test", "body\r\n"), "sel", "signer.test")
	sigEnd := bytes.Index(signed, []byte("\r\nFrom:"))
	sig := string(signed[:sigEnd])
	rest := signed[sigEnd+2:]
	replace := func(old, new string) []byte {
		return append([]byte(strings.Replace(sig, old, new, 1)+"\r\n"), rest...)
	}
	raw := func(field string) []byte { return append([]byte(field+"\r\n"), rest...) }
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"version 2", replace("v=1", "v=2")},
		{"unknown algorithm", replace("a=rsa-sha256", "a=rsa-md5")},
		{"no domain", replace("d=signer.test", "x=signer.test")},
		{"selector without key", replace("s=sel", "s=nokey")},
		{"key not base64", replace("s=sel", "s=bad")},
		{"revoked key", replace("s=sel", "s=rev")},
		{"key lookup fails", replace("s=sel", "s=down")},
		{"signature not base64", replace("b=", "b=!!!")},
		{"body hash changed", replace("bh=", "bh=AAAA")},
		{"empty field", raw("DKIM-Signature:")},
		{"garbage", raw("DKIM-Signature: ;;;=;==;\x00\xff")},
		{"no tags", raw("DKIM-Signature: v=1")},
		{"huge l=", replace("v=1;", "v=1; l=99999999999999999999999;")},
		{"negative l=", replace("v=1;", "v=1; l=-5;")},
		{"future timestamp", replace("v=1;", "v=1; t=99999999999; x=1;")},
		{"header list without from", raw("DKIM-Signature: v=1; a=rsa-sha256; d=signer.test; s=sel; h=subject; bh=AAAA; b=AAAA")},
		{"unterminated fold", []byte("DKIM-Signature: v=1;\r\n\t")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := w.check("a@signer.test", tc.msg)
			if len(res.DKIM) == 0 {
				t.Fatalf("no DKIM result for a message with a signature field")
			}
			for _, s := range res.DKIM {
				switch s.Result {
				case authres.ResultFail, authres.ResultPermError, authres.ResultTempError:
				default:
					t.Errorf("dkim=%s (%s)", s.Result, s.Reason)
				}
			}
			if tc.name == "key lookup fails" && res.DKIM[0].Result != authres.ResultTempError {
				t.Errorf("dns failure gave dkim=%s", res.DKIM[0].Result)
			}
			// The header field is always well-formed.
			h := w.checker.HeaderValue(Input{MailFrom: "a@signer.test"}, res)
			if strings.ContainsAny(strings.ReplaceAll(h, "\r\n\t", " "), "\x00\r\n") {
				t.Errorf("header breaks lines: %q", h)
			}
		})
	}
}

// TestDMARC: SPF fails and nothing is signed, so the From domain's
// policy decides; the configured action for p=reject is applied.
func TestDMARC(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		from        string
		onReject    Action
		wantDMARC   authres.ResultValue
		wantPolicy  string
		wantAction  Action
		mailFromOpt string
	}{
		{"a@pass.test", Reject, authres.ResultPass, "reject", Accept, ""},
		{"a@none.test", Reject, authres.ResultFail, "none", Accept, ""},
		{"a@quarantine.test", Reject, authres.ResultFail, "quarantine", Junk, ""},
		{"a@quarantine.test", Accept, authres.ResultFail, "quarantine", Accept, ""},
		{"a@reject.test", Reject, authres.ResultFail, "reject", Reject, ""},
		{"a@reject.test", Junk, authres.ResultFail, "reject", Junk, ""},
		{"a@reject.test", Accept, authres.ResultFail, "reject", Accept, ""},
		{"a@sub.org.test", Reject, authres.ResultFail, "reject", Reject, ""},
		{"a@nospf.test", Reject, authres.ResultNone, "", Accept, ""},
		{"a@tempdmarc.test", Reject, authres.ResultTempError, "", Accept, ""},
		// pct=0: never sampled, so p=reject weakens to quarantine.
		{"a@sampled.test", Reject, authres.ResultFail, "quarantine", Junk, ""},
		// SPF passes for pass.test, but From is reject.test: unaligned.
		{"a@reject.test", Reject, authres.ResultFail, "reject", Reject, "a@pass.test"},
	} {
		t.Run(tc.from+"/"+tc.onReject.String(), func(t *testing.T) {
			w.checker.DMARCReject = tc.onReject
			mf := tc.from
			if tc.mailFromOpt != "" {
				mf = tc.mailFromOpt
			}
			res := w.check(mf, message(tc.from, "x\r\n"))
			if res.DMARC != tc.wantDMARC || string(res.DMARCPolicy) != tc.wantPolicy || res.Action != tc.wantAction {
				t.Errorf("dmarc=%s p=%s action=%s (%s), want %s p=%s %s", res.DMARC, res.DMARCPolicy, res.Action, res.Why, tc.wantDMARC, tc.wantPolicy, tc.wantAction)
			}
		})
	}
}

// TestSPFFailAction: a configured action for SPF fail applies even when
// DMARC says nothing.
func TestSPFFailAction(t *testing.T) {
	w := newWorld(t)
	w.checker.SPFFail = Reject
	if res := w.check("a@fail.test", message("a@fail.test", "x\r\n")); res.Action != Reject || !strings.Contains(res.Why, "SPF") {
		t.Errorf("spf fail: %s %q", res.Action, res.Why)
	}
	if res := w.check("a@soft.test", message("a@soft.test", "x\r\n")); res.Action != Accept {
		t.Errorf("softfail: %s", res.Action)
	}
}

// TestHeader: one field, our authserv-id, every method on its own line,
// and it parses back.
func TestHeader(t *testing.T) {
	w := newWorld(t)
	signed := w.sign(t, message("a@signer.test", "x\r\n"), "sel", "signer.test")
	in := Input{MailFrom: "a@signer.test"}
	h := w.checker.HeaderValue(in, w.check("a@signer.test", signed))
	value := h
	if strings.Count(h, "\r\n") != strings.Count(h, "\r\n\t") || strings.Count(h, "\r\n\t") != 3 {
		t.Fatalf("not one method per folded line: %q", h)
	}
	id, results, err := authres.Parse(strings.ReplaceAll(strings.TrimSpace(value), "\r\n", ""))
	if err != nil || id != "mx.example.net" || len(results) != 3 {
		t.Fatalf("parse %q: %q %v %v", value, id, results, err)
	}
	for _, want := range []string{"spf=fail", "smtp.mailfrom=a@signer.test", "dkim=pass", "header.d=signer.test", "dmarc=pass", "header.from=signer.test"} {
		if !strings.Contains(h, want) {
			t.Errorf("header lacks %s: %q", want, h)
		}
	}
}

func TestParseAction(t *testing.T) {
	for in, want := range map[string]Action{"reject": Reject, "quarantine": Junk, "Junk": Junk, "mark": Accept, "": Accept} {
		if got, err := ParseAction(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseAction("drop"); err == nil {
		t.Error("drop accepted")
	}
}

// TestDMARCTempError: when DMARC would fail only because the aligned
// identifier's DNS lookup failed (an SPF or DKIM temperror), the result
// is temperror, not fail: a DNS outage must never be a 550 under
// p=reject (RFC 7489 section 6.6.2 leaves the message to be retried or
// accepted, never rejected).
func TestDMARCTempError(t *testing.T) {
	w := newWorld(t)
	w.dns.ServFail("tempspf.test", true)
	w.dns.TXT("_dmarc.tempspf.test", "v=DMARC1; p=reject")
	signed := w.sign(t, message("a@signer.test", "body\r\n"), "down", "signer.test")
	for _, tc := range []struct {
		name     string
		mailFrom string
		msg      []byte
	}{
		{"aligned DKIM key lookup fails", "a@signer.test", signed},
		{"aligned SPF lookup fails", "a@tempspf.test", message("a@tempspf.test", "x\r\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := w.check(tc.mailFrom, tc.msg)
			if res.DMARC != authres.ResultTempError || res.Action == Reject {
				t.Errorf("dmarc=%s action=%s (%s), want temperror and no reject", res.DMARC, res.Action, res.Why)
			}
		})
	}
}
