package smtp

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/dnsbl"
	"github.com/vmaild/vmaild/backend/dnsclient"
	"github.com/vmaild/vmaild/backend/greylist"
	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

func withScreens(s ...Screen) serverOpt { return func(srv *Server) { srv.Screens = s } }

// TestSwaksDNSBL: a client listed in a zone (answered by a loopback DNS
// server) is refused at RCPT with 554 5.7.1 naming the zone; the same
// client in an allowlisted network, or in MyNetworks, is not looked up.
func TestSwaksDNSBL(t *testing.T) {
	d := queuetest.NewDNS(t)
	d.A("1.0.0.127.bl.test", "127.0.0.2")
	r, err := dnsclient.New(d.Addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	listed := &dnsbl.Checker{Resolver: r, Zones: []dnsbl.Zone{{Name: "bl.test", Weight: 1}}}
	allowed := &dnsbl.Checker{Resolver: r, Zones: listed.Zones, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	args := []string{"--from", "someone@remote.test", "--to", "alice@example.org"}

	e := startServer(t, RoleMTA, false, withScreens(listed))
	out, ok := runSwaks(t, append([]string{"--server", e.addr}, args...)...)
	if ok || !strings.Contains(out, "<** 554 5.7.1 Service unavailable; client [127.0.0.1] blocked using bl.test") {
		t.Errorf("listed client:\n%s", out)
	}
	if n := len(e.agent.all()); n != 0 {
		t.Errorf("listed client delivered %d messages", n)
	}

	before := d.Queries()
	for name, e := range map[string]*env{
		"allowlisted network": startServer(t, RoleMTA, false, withScreens(allowed)),
		"mynetworks":          startServer(t, RoleMTA, false, withScreens(listed), withMyNetworks("127.0.0.0/8")),
	} {
		out, ok := runSwaks(t, append([]string{"--server", e.addr}, args...)...)
		if !ok || len(e.agent.all()) != 1 {
			t.Errorf("%s refused:\n%s", name, out)
		}
	}
	if d.Queries() != before {
		t.Errorf("skipped clients were looked up (%d queries)", d.Queries()-before)
	}
}

// TestSwaksGreylist: the first attempt of a triplet gets 451 4.7.1, a
// retry before the delay too, a retry after it is delivered; the clock is
// the test's.
func TestSwaksGreylist(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	g := &greylist.Greylister{Store: &greylist.Memory{}, Delay: 5 * time.Minute, Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}}
	advance := func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
	}
	e := startServer(t, RoleMTA, false, withScreens(g))
	args := []string{"--server", e.addr, "--from", "someone@remote.test", "--to", "alice@example.org"}

	out, ok := runSwaks(t, args...)
	if ok || !strings.Contains(out, "<** 451 4.7.1 Greylisted, try again in 300 seconds") {
		t.Fatalf("first attempt:\n%s", out)
	}
	advance(4 * time.Minute)
	out, ok = runSwaks(t, args...)
	if ok || !strings.Contains(out, "<** 451 4.7.1 Greylisted, try again in 60 seconds") {
		t.Fatalf("early retry:\n%s", out)
	}
	advance(time.Minute)
	if out, ok = runSwaks(t, args...); !ok {
		t.Fatalf("retry after the delay:\n%s", out)
	}
	// Authenticated and trusted clients are never greylisted: a new
	// triplet from MyNetworks goes straight through.
	trusted := startServer(t, RoleMTA, false, withScreens(g), withMyNetworks("127.0.0.1/32"))
	if out, ok = runSwaks(t, "--server", trusted.addr, "--from", "new@remote.test", "--to", "alice@example.org"); !ok {
		t.Fatalf("trusted client greylisted:\n%s", out)
	}
	if n := len(e.agent.all()); n != 1 {
		t.Errorf("delivered %d messages, want 1", n)
	}
}
