package senderauth

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"
)

// TestMalformedSPF: broken SPF records are permerror (RFC 7208 4.6), or
// what the RFC says for the harmless ones; none is a pass.
func TestMalformedSPF(t *testing.T) {
	w := newWorld(t)
	for i, tc := range []struct {
		record string
		want   []authres.ResultValue
	}{
		{"v=spf1 ip4:192.0.2.300 -all", []authres.ResultValue{authres.ResultPermError}},
		{"v=spf1 ip4:192.0.2.0/33 -all", []authres.ResultValue{authres.ResultPermError}},
		{"v=spf1 ip6:zz::1 -all", []authres.ResultValue{authres.ResultPermError}},
		{"v=spf1 bogus:thing -all", []authres.ResultValue{authres.ResultPermError}},
		{"v=spf1 include: -all", []authres.ResultValue{authres.ResultPermError}},
		{"v=spf1 redirect=", []authres.ResultValue{authres.ResultPermError}},
		{"v=spf1 exists:%{z} -all", []authres.ResultValue{authres.ResultPermError}},
		{"v=spf1 a:%{ir.v} -all", []authres.ResultValue{authres.ResultFail, authres.ResultPermError}},
		{"v=spf1 include:loop.test -all", []authres.ResultValue{authres.ResultPermError}},
		{"v=spf1 " + strings.Repeat("a:x.test ", 12) + "-all", []authres.ResultValue{authres.ResultPermError}},
		{"v=spf1 \x00\xff -all", []authres.ResultValue{authres.ResultPermError}},
		{"v=spf1", []authres.ResultValue{authres.ResultNeutral}},
		{"v=spf10 -all", []authres.ResultValue{authres.ResultNone}},
		{strings.Repeat("v=spf1 ", 100), []authres.ResultValue{authres.ResultPermError, authres.ResultNeutral}},
	} {
		domain := fmt.Sprintf("spf%d.test", i)
		w.dns.TXT(domain, tc.record)
		w.dns.TXT("loop.test", "v=spf1 include:loop.test -all")
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			res := w.check("a@"+domain, message("a@"+domain, "x\r\n"))
			ok := false
			for _, v := range tc.want {
				ok = ok || res.SPF == v
			}
			if !ok {
				t.Errorf("%q: spf=%s (%s), want one of %v", tc.record, res.SPF, res.SPFReason, tc.want)
			}
		})
	}
}

// TestMalformedDMARC: broken DMARC records are permerror or none, never
// a pass, and never reject mail by themselves.
func TestMalformedDMARC(t *testing.T) {
	w := newWorld(t)
	for i, record := range []string{
		"v=DMARC1",
		"v=DMARC1; p=bogus",
		"v=DMARC1; p=reject; pct=abc",
		"v=DMARC1; p=reject; adkim=x",
		"v=DMARC1 p=reject",
		"v=DMARC2; p=reject",
		"v=DMARC1;;;;=;p",
		"v=DMARC1; p=reject; fo=zz",
		"v=DMARC1; p=reject; ri=-1",
		"v=DMARC1; p=\x00\xff",
		strings.Repeat("v=DMARC1; ", 80),
	} {
		domain := fmt.Sprintf("dmarc%d.test", i)
		w.dns.TXT(domain, "v=spf1 -all")
		w.dns.TXT("_dmarc."+domain, record)
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			res := w.check("a@"+domain, message("a@"+domain, "x\r\n"))
			switch res.DMARC {
			case authres.ResultPermError, authres.ResultNone, authres.ResultFail:
			default:
				t.Errorf("%q: dmarc=%s (%s)", record, res.DMARC, res.DMARCReason)
			}
			if res.DMARC != authres.ResultFail && res.Action != Accept {
				t.Errorf("a malformed record decided %s", res.Action)
			}
		})
	}
}

// TestMalformedFrom: messages whose From cannot name one domain get no
// DMARC pass, whatever SPF says.
func TestMalformedFrom(t *testing.T) {
	w := newWorld(t)
	for _, head := range []string{
		"",
		"From: <a@pass.test>\r\nFrom: <b@pass.test>\r\n",
		"From: a@pass.test, b@pass.test\r\n",
		"From: not an address\r\n",
		"From: <a@>\r\n",
		"From: =?utf-8?q?broken\r\n",
		"From:\r\n",
		"From: <a@pass.test\r\n",
		"Garbage without colon\r\nFrom: <a@pass.test>\r\n",
	} {
		t.Run(fmt.Sprintf("%q", head), func(t *testing.T) {
			msg := []byte(head + "Subject: x\r\n\r\nbody\r\n")
			res := w.check("a@pass.test", msg)
			if res.DMARC == authres.ResultPass {
				t.Errorf("dmarc=pass for From %q", head)
			}
		})
	}
}

// TestManySignatures: a message with a hundred signatures costs at most
// MaxSignatures verifications.
func TestManySignatures(t *testing.T) {
	w := newWorld(t)
	signed := w.sign(t, message("a@signer.test", "x\r\n"), "sel", "signer.test")
	sig, _, _ := strings.Cut(string(signed), "\r\nFrom:")
	msg := strings.Repeat(sig+"\r\n", 100) + string(signed)
	before := w.dns.Queries()
	res := w.check("a@signer.test", []byte(msg))
	if len(res.DKIM) != DefaultMaxSignatures {
		t.Errorf("%d signatures verified, want %d", len(res.DKIM), DefaultMaxSignatures)
	}
	// SPF, DMARC and one key question per verified signature at most.
	if q := w.dns.Queries() - before; q > DefaultMaxSignatures+3 {
		t.Errorf("%d DNS questions", q)
	}
}
