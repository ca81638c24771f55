package autoconfig

import (
	"fmt"
	"strings"
)

// SRV is one DNS service record (RFC 2782) a domain publishes so that
// clients find its mail services (RFC 6186, RFC 8314 section 5.1).
type SRV struct {
	// Service is the owner name under the domain, like "_imaps._tcp".
	Service  string
	Priority int
	Weight   int
	Port     int
	Target   string
}

// String is the record in zone-file syntax, for domain.
func (r SRV) String() string { return r.Record("DOMAIN") }

// Record is the record in zone-file syntax for one domain.
func (r SRV) Record(domain string) string {
	// "." is the root, the "no service" target; any other gets its dot.
	return fmt.Sprintf("%s.%s. 3600 IN SRV %d %d %d %s", r.Service, domain, r.Priority, r.Weight, r.Port, fqdn(r.Target))
}

func fqdn(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

// SRVRecords are the records announcing the services of s, best first, as
// Incoming and Outgoing order them: implicit TLS gets the lower (preferred)
// priority, as RFC 8314 section 5.1 asks. Services not offered get the
// "no service" record (target "."), so clients do not guess.
func SRVRecords(s Settings) []SRV {
	var out []SRV
	names := []struct {
		service  string
		proto    string
		implicit bool
	}{
		{"_submissions._tcp", "smtp", true},
		{"_submission._tcp", "smtp", false},
		{"_imaps._tcp", "imap", true},
		{"_imap._tcp", "imap", false},
		{"_pop3s._tcp", "pop3", true},
		{"_pop3._tcp", "pop3", false},
	}
	for _, n := range names {
		rec := SRV{Service: n.service, Target: "."}
		for _, sv := range s.Services {
			if sv.Protocol == n.proto && sv.ImplicitTLS == n.implicit {
				rec = SRV{Service: n.service, Priority: priority(n.proto, n.implicit), Weight: 1, Port: sv.Port, Target: s.Hostname}
				break
			}
		}
		out = append(out, rec)
	}
	return out
}

// priority prefers implicit TLS over STARTTLS, and IMAP over POP3 (RFC
// 6186 section 3.4: a client offered both picks the lower priority).
func priority(proto string, implicit bool) int {
	p := 10
	if proto == "pop3" {
		p = 20
	}
	if !implicit {
		p += 5
	}
	return p
}
