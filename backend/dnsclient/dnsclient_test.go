package dnsclient

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

// TestAnswersAndErrors: answers come back as net.Resolver's would, and
// every failure carries the class SPF and DMARC libraries read.
func TestAnswersAndErrors(t *testing.T) {
	d := queuetest.NewDNS(t)
	long := strings.Repeat("k", 400) // split into two strings by the server
	d.TXT("txt.test", "v=spf1 -all")
	d.TXT("long.test", long)
	d.MX("mx.test", 10, "mail.mx.test")
	d.A("mail.mx.test", "192.0.2.1")
	d.A("mail.mx.test", "2001:db8::1")
	d.A("6only.test", "2001:db8::2")
	d.ServFail("down.test", true)
	d.A("1.2.0.192.in-addr.arpa", "192.0.2.1") // a name without PTR
	r, err := New(d.Addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	if txt, err := r.LookupTXT(ctx, "txt.test"); err != nil || len(txt) != 1 || txt[0] != "v=spf1 -all" {
		t.Errorf("TXT: %q %v", txt, err)
	}
	if txt, err := r.LookupTXT(ctx, "long.test"); err != nil || len(txt) != 1 || txt[0] != long {
		t.Errorf("long TXT not joined: %d strings, %v", len(txt), err)
	}
	if mx, err := r.LookupMX(ctx, "mx.test"); err != nil || len(mx) != 1 || mx[0].Host != "mail.mx.test." || mx[0].Pref != 10 {
		t.Errorf("MX: %v %v", mx, err)
	}
	if ips, err := r.LookupIPAddr(ctx, "mail.mx.test"); err != nil || len(ips) != 2 {
		t.Errorf("IPAddr: %v %v", ips, err)
	}
	if ips, err := r.LookupIPAddr(ctx, "6only.test"); err != nil || len(ips) != 1 {
		t.Errorf("IPv6 only: %v %v", ips, err)
	}
	if a, err := r.LookupA(ctx, "mail.mx.test"); err != nil || len(a) != 1 || a[0].String() != "192.0.2.1" {
		t.Errorf("A: %v %v", a, err)
	}

	for _, tc := range []struct {
		name           string
		lookup         func() error
		notFound, temp bool
	}{
		{"NXDOMAIN", func() error { _, err := r.LookupTXT(ctx, "nothing.test"); return err }, true, false},
		{"no record of the type", func() error { _, err := r.LookupTXT(ctx, "mx.test"); return err }, true, false},
		{"SERVFAIL", func() error { _, err := r.LookupTXT(ctx, "down.test"); return err }, false, true},
		{"SERVFAIL for addresses", func() error { _, err := r.LookupIPAddr(ctx, "down.test"); return err }, false, true},
		{"no PTR", func() error { _, err := r.LookupAddr(ctx, "192.0.2.1"); return err }, true, false},
		{"bad PTR address", func() error { _, err := r.LookupAddr(ctx, "not an ip"); return err }, false, false},
	} {
		err := tc.lookup()
		if err == nil || IsNotFound(err) != tc.notFound || IsTemporary(err) != tc.temp {
			t.Errorf("%s: %v (not found %v, temporary %v)", tc.name, err, IsNotFound(err), IsTemporary(err))
		}
		if err != nil && strings.Contains(err.Error(), d.Addr) {
			t.Errorf("%s: error names the resolver: %v", tc.name, err)
		}
	}

	// A server that does not answer is a temporary failure after the
	// timeout.
	dead, err := New("127.0.0.1:1", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dead.LookupTXT(ctx, "txt.test"); !IsTemporary(err) {
		t.Errorf("dead server: %v", err)
	}
	if _, err := New("no-port", 0); err == nil {
		t.Error("resolver without a port accepted")
	}
}
