// Package gate is the one connection gate every vmaild listener passes
// through: it names the client (address and network), caps connections per
// client network and in total, and bounds how long a connection may live.
package gate

import (
	"net"
	"net/netip"
)

// Default prefix lengths that group client addresses into networks: one
// IPv4 address, and an IPv6 /64, since one host or one customer line is
// usually handed a whole /64 and can pick any address inside it.
const (
	DefaultIPv4Prefix = 32
	DefaultIPv6Prefix = 64
)

// Networks groups client addresses into client networks. The zero value
// uses DefaultIPv4Prefix and DefaultIPv6Prefix.
type Networks struct {
	IPv4Prefix int `yaml:"ipv4_prefix" help:"prefix length that groups IPv4 clients into one client network for limits and throttling"`
	IPv6Prefix int `yaml:"ipv6_prefix" help:"prefix length that groups IPv6 clients into one client network for limits and throttling"`
}

// Of returns the client network of addr. An invalid addr (a unix socket
// peer) gives the zero Prefix, which callers treat as untracked.
func (n Networks) Of(addr netip.Addr) netip.Prefix {
	if !addr.IsValid() {
		return netip.Prefix{}
	}
	addr = addr.Unmap()
	bits := n.IPv4Prefix
	if bits <= 0 || bits > 32 {
		bits = DefaultIPv4Prefix
	}
	if addr.Is6() {
		bits = n.IPv6Prefix
		if bits <= 0 || bits > 128 {
			bits = DefaultIPv6Prefix
		}
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// ClientAddr is the client's IP address of a connection's remote address,
// with IPv4-mapped IPv6 addresses unmapped; invalid for non-IP peers.
func ClientAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case nil:
		return netip.Addr{}
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}
