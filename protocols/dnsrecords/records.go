// Package dnsrecords is the one place that knows which DNS records a
// domain hosted here needs: MX, SPF, DKIM, DMARC, MTA-STS (RFC 8461),
// TLS-RPT (RFC 8460), the autoconfig and autodiscover names, and the RFC
// 6186 SRV records. Expected computes them from the server's settings;
// Check asks a resolver for each and says whether it is ok, missing or
// wrong. `vmaild dns` prints the first, `vmaild dns check` runs the second.
package dnsrecords

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/vmaild/vmaild/backend/mtasts"
	"github.com/vmaild/vmaild/protocols/autoconfig"
)

// Kinds of record, as Record.Kind names them.
const (
	KindMX           = "MX"
	KindSPF          = "SPF"
	KindDKIM         = "DKIM"
	KindDMARC        = "DMARC"
	KindMTASTS       = "MTA-STS"
	KindMTASTSHost   = "MTA-STS host"
	KindTLSRPT       = "TLS-RPT"
	KindAutoconfig   = "autoconfig"
	KindAutodiscover = "autodiscover"
	KindSRV          = "SRV"
)

// DKIMKey is one published signing key: its selector and TXT value
// ("v=DKIM1; k=ed25519; p=…", as backend/dkim.Record makes it).
type DKIMKey struct {
	Selector string
	Record   string
}

// Settings are what the records are computed from.
type Settings struct {
	// Domain is the hosted domain.
	Domain string
	// Hostname is the server's name: the MX target, and the host of the
	// MTA-STS policy's mx line.
	Hostname string
	// Clients is what mail clients are told (autoconfig): the name they
	// connect to and the listeners; the SRV records and the autoconfig
	// and autodiscover names point there.
	Clients autoconfig.Settings
	// DKIM are the domain's signing keys.
	DKIM []DKIMKey
	// SPF, DMARC and TLSRPT are the TXT values; "%d" stands for Domain.
	SPF, DMARC, TLSRPT string
	// MTASTS is our MTA-STS policy (mta_sts.* in the configuration, the
	// one the mta_sts listener serves); nil: no MTA-STS records.
	MTASTS *mtasts.Policy
}

// Record is one record to publish.
type Record struct {
	// Kind says what it is for (KindMX, KindDKIM, …); Label tells records
	// of one kind apart (the DKIM selector, the SRV service).
	Kind  string `json:"kind"`
	Label string `json:"label,omitempty"`
	// Name is the owner name, fully qualified with its trailing dot.
	Name string `json:"name"`
	// Type is the DNS type: MX, TXT, CNAME or SRV.
	Type string `json:"type"`
	// Value is the data in zone-file syntax (a TXT value unquoted).
	Value string `json:"value"`
}

// ttl is the TTL printed in zone lines.
const ttl = 3600

// ZoneLine is the record as a line of a zone file; a TXT value longer
// than a DNS string is cut into strings of at most 255 bytes.
func (r Record) ZoneLine() string {
	v := r.Value
	if r.Type == "TXT" {
		var parts []string
		for len(v) > 255 {
			parts, v = append(parts, `"`+v[:255]+`"`), v[255:]
		}
		v = strings.Join(append(parts, `"`+v+`"`), " ")
	}
	return fmt.Sprintf("%s %d IN %s %s", r.Name, ttl, r.Type, v)
}

func fqdn(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".") + "."
}

// Expected are the records s's domain needs, in the order an admin
// publishes them.
func Expected(s Settings) []Record {
	d := fqdn(s.Domain)
	host := fqdn(s.Hostname)
	clientHost := fqdn(s.Clients.Hostname)
	if s.Clients.Hostname == "" {
		clientHost = host
	}
	expand := func(v string) string { return strings.ReplaceAll(v, "%d", strings.TrimSuffix(d, ".")) }
	recs := []Record{
		{Kind: KindMX, Name: d, Type: "MX", Value: "10 " + host},
		{Kind: KindSPF, Name: d, Type: "TXT", Value: expand(s.SPF)},
	}
	for _, k := range s.DKIM {
		recs = append(recs, Record{Kind: KindDKIM, Label: k.Selector, Name: k.Selector + "._domainkey." + d, Type: "TXT", Value: k.Record})
	}
	recs = append(recs, Record{Kind: KindDMARC, Name: "_dmarc." + d, Type: "TXT", Value: expand(s.DMARC)})
	if s.MTASTS != nil {
		recs = append(recs,
			Record{Kind: KindMTASTS, Name: "_mta-sts." + d, Type: "TXT", Value: "v=STSv1; id=" + PolicyID(Policy(s))},
			Record{Kind: KindMTASTSHost, Name: "mta-sts." + d, Type: "CNAME", Value: host})
	}
	if s.TLSRPT != "" {
		recs = append(recs, Record{Kind: KindTLSRPT, Name: "_smtp._tls." + d, Type: "TXT", Value: expand(s.TLSRPT)})
	}
	recs = append(recs,
		Record{Kind: KindAutoconfig, Name: "autoconfig." + d, Type: "CNAME", Value: clientHost},
		Record{Kind: KindAutodiscover, Name: "autodiscover." + d, Type: "CNAME", Value: clientHost})
	for _, srv := range autoconfig.SRVRecords(s.Clients) {
		target := "."
		if srv.Target != "." {
			target = fqdn(srv.Target)
		}
		recs = append(recs, Record{Kind: KindSRV, Label: srv.Service, Name: srv.Service + "." + d, Type: "SRV",
			Value: fmt.Sprintf("%d %d %d %s", srv.Priority, srv.Weight, srv.Port, target)})
	}
	return recs
}

// Policy is the MTA-STS policy file (RFC 8461 section 3.2) served at
// https://mta-sts.DOMAIN/.well-known/mta-sts.txt, written by the one
// formatter the mta_sts listener serves with, so the TXT record's id is
// the id of what is served. It is empty when MTA-STS is off.
func Policy(s Settings) string {
	if s.MTASTS == nil {
		return ""
	}
	return string(s.MTASTS.Format())
}

// PolicyID is the id of the _mta-sts TXT record for a policy: derived from
// its content, so it changes exactly when the policy does and senders
// fetch the new one (RFC 8461 section 3.1).
func PolicyID(policy string) string {
	h := sha256.Sum256([]byte(policy))
	return hex.EncodeToString(h[:10])
}
