package gate

import (
	"net"
	"net/netip"
	"testing"
)

func TestNetworksOf(t *testing.T) {
	tests := []struct {
		n    Networks
		addr string
		want string
	}{
		{Networks{}, "192.0.2.7", "192.0.2.7/32"},
		{Networks{}, "::ffff:192.0.2.7", "192.0.2.7/32"},
		{Networks{}, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{Networks{IPv4Prefix: 24, IPv6Prefix: 48}, "192.0.2.7", "192.0.2.0/24"},
		{Networks{IPv4Prefix: 24, IPv6Prefix: 48}, "2001:db8:1:2:3:4:5:6", "2001:db8:1::/48"},
		{Networks{IPv4Prefix: 99, IPv6Prefix: -1}, "192.0.2.7", "192.0.2.7/32"},
		{Networks{IPv4Prefix: 99, IPv6Prefix: -1}, "2001:db8::1", "2001:db8::/64"},
	}
	for _, tt := range tests {
		got := tt.n.Of(netip.MustParseAddr(tt.addr))
		if got.String() != tt.want {
			t.Errorf("%+v.Of(%s) = %s, want %s", tt.n, tt.addr, got, tt.want)
		}
	}
	if p := (Networks{}).Of(netip.Addr{}); p.IsValid() {
		t.Errorf("Of(invalid) = %s, want the zero prefix", p)
	}
}

func TestClientAddr(t *testing.T) {
	tcp := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 25}
	if got := ClientAddr(tcp); got != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("ClientAddr(tcp) = %s", got)
	}
	if got := ClientAddr(&net.UnixAddr{Name: "/run/x", Net: "unix"}); got.IsValid() {
		t.Errorf("ClientAddr(unix) = %s, want invalid", got)
	}
	if got := ClientAddr(nil); got.IsValid() {
		t.Errorf("ClientAddr(nil) = %s, want invalid", got)
	}
}
