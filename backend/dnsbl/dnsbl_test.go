package dnsbl

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/dnsclient"
	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

// lists publishes a Spamhaus-like zone, a second blocklist and an
// allowlist on a loopback DNS server.
func lists(t *testing.T) (*queuetest.DNS, *Checker) {
	t.Helper()
	d := queuetest.NewDNS(t)
	d.A("2.0.0.192.zen.test", "127.0.0.2")                                                       // SBL
	d.A("3.0.0.192.zen.test", "127.0.0.11")                                                      // PBL only
	d.A("4.0.0.192.zen.test", "127.255.255.254")                                                 // "public resolver": an error, not a listing
	d.A("5.0.0.192.zen.test", "203.0.113.9")                                                     // a hijacking resolver's answer
	d.A("6.0.0.192.zen.test", "127.0.0.4")                                                       // XBL, also allowlisted below
	d.A("6.0.0.192.wl.test", "127.0.10.2")                                                       // allowlist
	d.A("7.0.0.192.weak.test", "127.0.0.2")                                                      // half a listing
	d.A("8.0.0.192.weak.test", "127.0.0.2")                                                      // two halves make one
	d.A("8.0.0.192.weak2.test", "127.0.0.2")                                                     //
	d.ServFail("9.0.0.192.zen.test", true)                                                       // zone down
	d.A("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.test", "127.0.0.3") // 2001:db8::1
	r, err := dnsclient.New(d.Addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	pbl, _ := ParseCodes("127.0.0.2-127.0.0.9")
	c := &Checker{
		Resolver: r,
		Zones: []Zone{
			{Name: "zen.test", Weight: 1, Codes: []CodeRange{pbl}},
			{Name: "wl.test", Weight: -5},
			{Name: "weak.test", Weight: 0.5},
			{Name: "weak2.test", Weight: 0.5},
		},
		Allow: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
	}
	return d, c
}

func TestCheck(t *testing.T) {
	_, c := lists(t)
	for _, tc := range []struct {
		ip       string
		listed   bool
		zone     string
		problems int
	}{
		{"192.0.0.1", false, "", 0},
		{"192.0.0.2", true, "zen.test", 0},
		{"192.0.0.3", false, "", 0}, // PBL does not count for this zone
		{"192.0.0.4", false, "", 1},
		{"192.0.0.5", false, "", 0},
		{"192.0.0.6", false, "zen.test", 0}, // listed but allowlisted by DNS
		{"192.0.0.7", false, "weak.test", 0},
		{"192.0.0.8", true, "weak.test", 0},
		{"192.0.0.9", false, "", 1},
		{"2001:db8::1", true, "zen.test", 0},
		{"::ffff:192.0.0.2", true, "zen.test", 0},
	} {
		t.Run(tc.ip, func(t *testing.T) {
			v := c.Check(context.Background(), netip.MustParseAddr(tc.ip))
			if v.Listed != tc.listed || v.Zone() != tc.zone || len(v.Problems) != tc.problems {
				t.Errorf("%+v: want listed=%v zone=%q problems=%d", v, tc.listed, tc.zone, tc.problems)
			}
		})
	}
	v := c.Check(context.Background(), netip.MustParseAddr("192.0.0.2"))
	if len(v.Hits) != 1 || !slices.Equal(v.Hits[0].Meaning, []string(nil)) {
		t.Errorf("meaning for a non-Spamhaus zone: %+v", v.Hits)
	}
}

// TestAllowedNetworkSkips: an allowlisted network is not even looked up.
func TestAllowedNetworkSkips(t *testing.T) {
	d, c := lists(t)
	d.A("1.100.51.198.zen.test", "127.0.0.2")
	before := d.Queries()
	if v := c.Check(context.Background(), netip.MustParseAddr("198.51.100.1")); v.Listed || len(v.Hits) > 0 {
		t.Errorf("allowlisted: %+v", v)
	}
	if d.Queries() != before {
		t.Errorf("allowlisted network was looked up")
	}
}

// TestCache: a second check within the TTL asks nothing; after it, the
// lists are asked again.
func TestCache(t *testing.T) {
	d, c := lists(t)
	now := time.Unix(1e9, 0)
	c.Now = func() time.Time { return now }
	c.CacheTTL = time.Minute
	ip := netip.MustParseAddr("192.0.0.2")
	c.Check(context.Background(), ip)
	q := d.Queries()
	if v := c.Check(context.Background(), ip); !v.Listed {
		t.Errorf("cached verdict lost: %+v", v)
	}
	if d.Queries() != q {
		t.Errorf("cached check asked %d questions", d.Queries()-q)
	}
	now = now.Add(2 * time.Minute)
	c.Check(context.Background(), ip)
	if d.Queries() != q+len(c.Zones) {
		t.Errorf("expired check asked %d questions, want %d", d.Queries()-q, len(c.Zones))
	}
	c.CacheSize = 2
	for i := range 5 {
		c.Check(context.Background(), netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
	}
	if n := len(c.cache); n > 2 {
		t.Errorf("cache holds %d entries, limit 2", n)
	}
}

func TestInterpret(t *testing.T) {
	zen := Zone{Name: "zen.spamhaus.org", Weight: 2}
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name    string
		answers []netip.Addr
		hit     bool
		meaning []string
		problem bool
	}{
		{"SBL", []netip.Addr{a("127.0.0.2")}, true, []string{"SBL"}, false},
		{"XBL+PBL", []netip.Addr{a("127.0.0.4"), a("127.0.0.10")}, true, []string{"XBL", "PBL"}, false},
		{"CSS", []netip.Addr{a("127.0.0.3")}, true, []string{"CSS"}, false},
		{"typing error", []netip.Addr{a("127.255.255.252")}, false, nil, true},
		{"public resolver", []netip.Addr{a("127.255.255.254")}, false, nil, true},
		{"excessive queries", []netip.Addr{a("127.255.255.255")}, false, nil, true},
		{"127.0.0.1", []netip.Addr{a("127.0.0.1")}, false, nil, false},
		{"outside 127/8", []netip.Addr{a("10.0.0.2"), a("0.0.0.0")}, false, nil, false},
		{"IPv6 answer", []netip.Addr{a("::1")}, false, nil, false},
		{"mapped", []netip.Addr{a("::ffff:127.0.0.2")}, true, []string{"SBL"}, false},
		{"unknown code", []netip.Addr{a("127.0.0.99")}, true, nil, false},
		{"none", nil, false, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hit, problem := Interpret(zen, tc.answers)
			if (hit != nil) != tc.hit || (problem != "") != tc.problem {
				t.Fatalf("hit=%+v problem=%q", hit, problem)
			}
			if hit != nil && (!slices.Equal(hit.Meaning, tc.meaning) || hit.Weight != 2) {
				t.Errorf("hit %+v, want meaning %v", hit, tc.meaning)
			}
		})
	}
}

func TestParseCodes(t *testing.T) {
	for _, s := range []string{"127.0.0.2", "127.0.0.4-127.0.0.7", " 127.0.0.10 - 127.0.0.11 "} {
		if _, err := ParseCodes(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"", "x", "::1", "127.0.0.7-127.0.0.4", "127.0.0.1-", "127.0.0.1-::2"} {
		if _, err := ParseCodes(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestReverse(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":        "1.2.0.192",
		"::ffff:192.0.2.1": "1.2.0.192",
		"2001:db8::1":      "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2",
	} {
		if got := Reverse(netip.MustParseAddr(in)); got != want {
			t.Errorf("Reverse(%s) = %s, want %s", in, got, want)
		}
	}
}

// FuzzInterpret: any answer bytes give a hit only for 127/8 answers, a
// problem only for error codes, and never panic.
func FuzzInterpret(f *testing.F) {
	f.Add([]byte{127, 0, 0, 2, 127, 255, 255, 254}, "zen.spamhaus.org", "127.0.0.2-127.0.0.9")
	f.Add([]byte{10, 0, 0, 1}, "bl.test", "")
	f.Add([]byte{127, 0, 0, 1, 127, 0, 0}, "x", "127.0.0.1-127.0.0.0")
	f.Fuzz(func(t *testing.T, raw []byte, zone, codes string) {
		z := Zone{Name: zone}
		if r, err := ParseCodes(codes); err == nil {
			z.Codes = []CodeRange{r}
		}
		var answers []netip.Addr
		for len(raw) >= 4 {
			answers = append(answers, netip.AddrFrom4([4]byte(raw[:4])))
			raw = raw[4:]
		}
		hit, _ := Interpret(z, answers)
		if hit == nil {
			return
		}
		for _, a := range hit.Answers {
			if !loopback8.Contains(a) || spamhausErrors.Contains(a) || a == netip.AddrFrom4([4]byte{127, 0, 0, 1}) {
				t.Errorf("answer %s counted as listing", a)
			}
		}
	})
}
