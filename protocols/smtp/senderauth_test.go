package smtp

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/dnsclient"
	"github.com/vmaild/vmaild/backend/inbound"
	"github.com/vmaild/vmaild/backend/queue/queuetest"
	"github.com/vmaild/vmaild/backend/senderauth"
	"github.com/vmaild/vmaild/internal/testsrv"
)

// authWorld is a loopback DNS server publishing SPF, DMARC and a DKIM key
// for the domains of TestSwaksSenderAuth, and a key file for dkimsign.
type authWorld struct {
	dns     *queuetest.DNS
	keyFile string
}

func newAuthWorld(t testing.TB) *authWorld {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	w := &authWorld{dns: queuetest.NewDNS(t), keyFile: filepath.Join(t.TempDir(), "dkim.key")}
	if err := os.WriteFile(w.keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	d := w.dns
	d.TXT("sel._domainkey.signer.test", "v=DKIM1; k=rsa; p="+base64.StdEncoding.EncodeToString(pub))
	d.TXT("signer.test", "v=spf1 -all")
	d.TXT("_dmarc.signer.test", "v=DMARC1; p=reject")
	// The test client is 127.0.0.1.
	d.TXT("pass.test", "v=spf1 ip4:127.0.0.0/8 -all")
	d.TXT("_dmarc.pass.test", "v=DMARC1; p=reject")
	d.TXT("fail.test", "v=spf1 ip4:192.0.2.1 -all")
	d.TXT("soft.test", "v=spf1 ~all")
	d.TXT("neutral.test", "v=spf1 ?all")
	d.A("nospf.test", "192.0.2.9")
	d.ServFail("temp.test", true)
	for _, p := range []string{"none", "quarantine", "reject"} {
		d.TXT(p+".test", "v=spf1 -all")
		d.TXT("_dmarc."+p+".test", "v=DMARC1; p="+p)
	}
	return w
}

// sign has python3-dkim's dkimsign sign msg.
func (w *authWorld) sign(t testing.TB, msg string) string {
	t.Helper()
	cmd := exec.Command(testsrv.RequireBinary(t, "dkimsign"), "sel", "signer.test", w.keyFile)
	cmd.Stdin = strings.NewReader(msg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dkimsign: %v: %s", err, stderr.String())
	}
	return string(out)
}

func authMessage(from, body string) string {
	return "From: <" + from + ">\r\nTo: <alice@example.org>\r\nSubject: auth test\r\nDate: Thu, 03 Dec 2026 15:00:00 +0000\r\nMessage-ID: <auth@test>\r\n\r\n" + body
}

// withSenderAuth runs the sender authentication check against the world's
// DNS server.
func withSenderAuth(t testing.TB, w *authWorld, dmarcReject senderauth.Action) serverOpt {
	r, err := dnsclient.New(w.dns.Addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return withChecks(inbound.Step{Check: &senderauth.Checker{Resolver: r, DMARCReject: dmarcReject}})
}

// TestSwaksSenderAuth: messages sent with swaks to the MTA listener, the
// DKIM signatures made by dkimpy, every record served by a loopback DNS
// server: the delivered message carries one Authentication-Results field
// with our host name, DMARC p=reject failing is refused with 550 5.7.1
// at the end of DATA, p=quarantine is filed as junk.
func TestSwaksSenderAuth(t *testing.T) {
	w := newAuthWorld(t)
	e := startServer(t, RoleMTA, false, withSenderAuth(t, w, senderauth.Reject))
	signed := w.sign(t, authMessage("a@signer.test", "Hello, world.\r\n"))
	tampered := strings.Replace(signed, "Hello, world.", "Hello, w0rld.", 1)
	spoofed := "Authentication-Results: MX.example.org; dkim=pass header.d=bank.test\r\n" +
		"Authentication-Results: other.example; spf=pass\r\n" + authMessage("a@pass.test", "x\r\n")
	malformedSig := "DKIM-Signature: v=1; a=rsa-sha256; d=signer.test; s=sel; h=from; bh=!!; b=###\r\n" + authMessage("a@signer.test", "x\r\n")

	tests := []struct {
		name     string
		mailFrom string
		data     string
		reply    string   // in swaks' transcript
		header   []string // in the delivered message
		absent   []string
		junk     bool
	}{
		{name: "dkim pass aligns despite spf fail", mailFrom: "a@signer.test", data: signed,
			reply:  "<-  250 2.0.0",
			header: []string{"Authentication-Results: mx.example.org;\r\n\tspf=fail smtp.mailfrom=a@signer.test;\r\n\tdkim=pass header.d=signer.test", "dmarc=pass header.from=signer.test"}},
		{name: "dkim body tampered, p=reject", mailFrom: "a@signer.test", data: tampered,
			reply: "<** 550 5.7.1 Message refused: DMARC policy of signer.test (p=reject) failed"},
		{name: "malformed signature, p=reject", mailFrom: "a@signer.test", data: malformedSig,
			reply: "<** 550 5.7.1 Message refused: DMARC policy of signer.test"},
		{name: "unsigned, spf pass", mailFrom: "a@pass.test", data: authMessage("a@pass.test", "x\r\n"),
			reply: "<-  250 2.0.0", header: []string{"spf=pass smtp.mailfrom=a@pass.test", "dkim=none", "dmarc=pass header.from=pass.test"}},
		{name: "spf fail", mailFrom: "a@fail.test", data: authMessage("a@fail.test", "x\r\n"),
			reply: "<-  250 2.0.0", header: []string{"spf=fail smtp.mailfrom=a@fail.test", "dmarc=none"}},
		{name: "spf softfail", mailFrom: "a@soft.test", data: authMessage("a@soft.test", "x\r\n"),
			reply: "<-  250 2.0.0", header: []string{"spf=softfail smtp.mailfrom=a@soft.test"}},
		{name: "spf neutral", mailFrom: "a@neutral.test", data: authMessage("a@neutral.test", "x\r\n"),
			reply: "<-  250 2.0.0", header: []string{"spf=neutral smtp.mailfrom=a@neutral.test"}},
		{name: "spf none", mailFrom: "a@nospf.test", data: authMessage("a@nospf.test", "x\r\n"),
			reply: "<-  250 2.0.0", header: []string{"spf=none smtp.mailfrom=a@nospf.test"}},
		{name: "spf temperror", mailFrom: "a@temp.test", data: authMessage("a@temp.test", "x\r\n"),
			reply: "<-  250 2.0.0", header: []string{"spf=temperror reason=\"lookup temp.test: SERVFAIL\" smtp.mailfrom=a@temp.test"}},
		{name: "dmarc fail p=none", mailFrom: "a@none.test", data: authMessage("a@none.test", "x\r\n"),
			reply: "<-  250 2.0.0", header: []string{"dmarc=fail header.from=none.test"}},
		{name: "dmarc fail p=quarantine", mailFrom: "a@quarantine.test", data: authMessage("a@quarantine.test", "x\r\n"),
			reply: "<-  250 2.0.0", header: []string{"dmarc=fail header.from=quarantine.test"}, junk: true},
		{name: "dmarc fail p=reject", mailFrom: "a@reject.test", data: authMessage("a@reject.test", "x\r\n"),
			reply: "<** 550 5.7.1 Message refused: DMARC policy of reject.test (p=reject) failed"},
		{name: "our authserv-id forged", mailFrom: "a@pass.test", data: spoofed,
			reply:  "<-  250 2.0.0",
			header: []string{"Authentication-Results: other.example; spf=pass", "Authentication-Results: mx.example.org;\r\n\tspf=pass"},
			absent: []string{"bank.test"}},
	}
	dir := t.TempDir()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".eml")
			if err := os.WriteFile(file, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			before := len(e.agent.all())
			out, _ := runSwaks(t, "--server", e.addr, "--from", tc.mailFrom, "--to", "alice@example.org", "--data", "@"+file)
			if !strings.Contains(out, tc.reply) {
				t.Fatalf("case %d: want %q in:\n%s", i, tc.reply, out)
			}
			got := e.agent.all()[before:]
			if !strings.HasPrefix(tc.reply, "<-  250") {
				if len(got) != 0 {
					t.Errorf("refused message delivered")
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("delivered %d messages", len(got))
			}
			data := got[0].data
			if n := strings.Count(data, "Authentication-Results: mx.example.org"); n != 1 {
				t.Errorf("%d Authentication-Results fields of ours:\n%s", n, data)
			}
			for _, h := range tc.header {
				if !strings.Contains(data, h) {
					t.Errorf("delivered message lacks %q:\n%s", h, data)
				}
			}
			for _, h := range tc.absent {
				if strings.Contains(data, h) {
					t.Errorf("delivered message has %q:\n%s", h, data)
				}
			}
			v := got[0].env.Verdict
			if junk := v != nil && v.Junk; junk != tc.junk {
				t.Errorf("junk=%v, want %v", junk, tc.junk)
			}
		})
	}
}

// TestSwaksSenderAuthMark: with dmarc_reject "mark", p=reject failing is
// delivered, marked, not refused.
func TestSwaksSenderAuthMark(t *testing.T) {
	w := newAuthWorld(t)
	e := startServer(t, RoleMTA, false, withSenderAuth(t, w, senderauth.Accept))
	out, ok := runSwaks(t, "--server", e.addr, "--from", "a@reject.test", "--to", "alice@example.org",
		"--header", "From: <a@reject.test>")
	if !ok {
		t.Fatalf("marked message refused:\n%s", out)
	}
	got := e.agent.all()
	if len(got) != 1 || !strings.Contains(got[0].data, "dmarc=fail header.from=reject.test") {
		t.Fatalf("delivered %+v", got)
	}
}
