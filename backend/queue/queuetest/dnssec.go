package queuetest

import (
	"encoding/hex"
	"strings"

	"github.com/miekg/dns"
)

// TLSA adds a TLSA record (RFC 6698) at name, e.g. "_25._tcp.mx.test";
// data is the certificate association data (a DER blob or its digest).
func (d *DNS) TLSA(name string, usage, selector, matching uint8, data []byte) {
	rr := &dns.TLSA{
		Hdr:          dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTLSA, Class: dns.ClassINET, Ttl: 60},
		Usage:        usage,
		Selector:     selector,
		MatchingType: matching,
	}
	rr.Certificate = hex.EncodeToString(data)
	d.add(rr)
}

// Secure sets (on) or clears the AD bit on every answer for name, as a
// validating resolver does for DNSSEC-signed data it checked. Names are
// insecure until said otherwise.
func (d *DNS) Secure(name string, on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.secure == nil {
		d.secure = make(map[string]bool)
	}
	d.secure[strings.ToLower(dns.Fqdn(name))] = on
}
