package dnsrecords

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Statuses of a checked record.
const (
	StatusOK      = "ok"
	StatusMissing = "missing"
	StatusWrong   = "wrong"
	// StatusError is a lookup that failed (SERVFAIL, timeout): neither
	// present nor absent.
	StatusError = "error"
)

// Result is what the resolver answered for one expected record.
type Result struct {
	Record
	Status string `json:"status"`
	// Found are the answers of the record's kind (zone-file data).
	Found []string `json:"found,omitempty"`
	// Note says why a record is wrong, or what is worth knowing about
	// one that is ok.
	Note string `json:"note,omitempty"`
}

// Querier asks the resolver one question: backend/dnsclient.Resolver,
// the configured resolver every DNS lookup of vmaild goes through. A name
// or type with no records is a *net.DNSError with IsNotFound.
type Querier interface {
	Query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error)
}

// query is q.Query with "no such record" as an empty answer.
func query(ctx context.Context, q Querier, name string, qtype uint16) ([]dns.RR, error) {
	rrs, err := q.Query(ctx, name, qtype)
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return nil, nil
	}
	return rrs, err
}

// Check looks up every record through q and compares what it finds.
func Check(ctx context.Context, q Querier, recs []Record) []Result {
	out := make([]Result, len(recs))
	for i, rec := range recs {
		out[i] = check(ctx, q, rec)
	}
	return out
}

func check(ctx context.Context, q Querier, rec Record) Result {
	res := Result{Record: rec}
	rrs, err := query(ctx, q, rec.Name, dns.StringToType[rec.Type])
	if err != nil {
		res.Status, res.Note = StatusError, err.Error()
		return res
	}
	var found []string
	for _, rr := range rrs {
		found = append(found, rdata(rr))
	}
	switch rec.Type {
	case "TXT":
		res.Status, res.Found, res.Note = compareTXT(rec, found)
	case "CNAME":
		res.Status, res.Found, res.Note = compareAlias(ctx, q, rec, found)
	default:
		res.Found = found
		res.Status, res.Note = compareHost(rec, found)
	}
	return res
}

// rdata is an answer's data in zone-file syntax, a TXT's strings joined
// into one value (as a verifier reads it).
func rdata(rr dns.RR) string {
	switch rr := rr.(type) {
	case *dns.TXT:
		return strings.Join(rr.Txt, "")
	case *dns.MX:
		return fmt.Sprintf("%d %s", rr.Preference, strings.ToLower(rr.Mx))
	case *dns.SRV:
		return fmt.Sprintf("%d %d %d %s", rr.Priority, rr.Weight, rr.Port, strings.ToLower(rr.Target))
	case *dns.CNAME:
		return strings.ToLower(rr.Target)
	}
	return strings.TrimPrefix(rr.String(), rr.Header().String())
}

// compareHost checks MX and SRV records by where they point: an MX set
// must name this server (other, backup MX hosts may be there too); an
// SRV record must have the expected target and port (priorities and
// weights are the admin's to choose).
func compareHost(rec Record, found []string) (string, string) {
	if len(found) == 0 {
		return StatusMissing, ""
	}
	want := strings.Fields(rec.Value)
	for _, f := range found {
		got := strings.Fields(f)
		switch {
		case rec.Type == "MX" && len(got) == 2 && got[1] == want[1]:
			return StatusOK, ""
		case rec.Type == "SRV" && len(got) == 4 && got[2] == want[2] && got[3] == want[3]:
			return StatusOK, ""
		}
	}
	if rec.Type == "MX" {
		return StatusWrong, "no MX names " + want[1]
	}
	return StatusWrong, "no record has port " + want[2] + " and target " + want[3]
}

// txtPrefix is how a TXT value of each kind starts; other TXT records at
// the same name (site verifications) are not this record.
func txtPrefix(kind string) string {
	switch kind {
	case KindSPF:
		return "v=spf1"
	case KindDKIM:
		return "v=dkim1"
	case KindDMARC:
		return "v=dmarc1"
	case KindMTASTS:
		return "v=stsv1"
	case KindTLSRPT:
		return "v=tlsrptv1"
	}
	return ""
}

// compareTXT picks the records of rec's kind among the TXT answers: none
// is missing, more than one is wrong (SPF, DMARC, MTA-STS and TLS-RPT all
// treat several as none at all), one is compared by its terms or tags.
func compareTXT(rec Record, found []string) (string, []string, string) {
	prefix := txtPrefix(rec.Kind)
	var mine []string
	for _, f := range found {
		v := strings.ToLower(strings.TrimSpace(f))
		// A DKIM key record may leave v= out (RFC 6376 3.6.1).
		if strings.HasPrefix(v, prefix) || rec.Kind == KindDKIM && strings.Contains(v, "p=") {
			mine = append(mine, f)
		}
	}
	switch len(mine) {
	case 0:
		return StatusMissing, found, ""
	case 1:
	default:
		return StatusWrong, mine, fmt.Sprintf("%d records; receivers then use none", len(mine))
	}
	got := mine[0]
	switch rec.Kind {
	case KindSPF:
		if !sameTerms(got, rec.Value) {
			return StatusWrong, mine, "differs from the configured SPF policy (dns.spf)"
		}
	case KindDKIM:
		g, w := tags(got), tags(rec.Value)
		if g["k"] == "" {
			g["k"] = "rsa" // RFC 6376 3.6.1: the default
		}
		if g["p"] != w["p"] || !strings.EqualFold(g["k"], w["k"]) {
			return StatusWrong, mine, "not the public key of the signing key (vmaild dkim show)"
		}
	case KindMTASTS:
		id := tags(got)["id"]
		if !validPolicyID(id) {
			return StatusWrong, mine, "no valid id= (1 to 32 letters and digits)"
		}
		if want := tags(rec.Value)["id"]; id != want {
			// Any id works; ours changes with the policy, theirs must be
			// changed by hand when the policy changes.
			return StatusOK, mine, "id " + id + " is not the policy's (" + want + "): change it whenever the policy changes"
		}
	default: // DMARC, TLS-RPT: the configured tags, others may be added
		g := tags(got)
		for k, v := range tags(rec.Value) {
			if !strings.EqualFold(g[k], v) {
				return StatusWrong, mine, fmt.Sprintf("%s=%s, want %s", k, g[k], v)
			}
		}
	}
	return StatusOK, mine, ""
}

// sameTerms compares SPF records term by term, in any order, ignoring
// case and spacing.
func sameTerms(a, b string) bool {
	ta, tb := strings.Fields(strings.ToLower(a)), strings.Fields(strings.ToLower(b))
	slices.Sort(ta)
	slices.Sort(tb)
	return slices.Equal(ta, tb)
}

// tags reads a tag=value list ("v=DMARC1; p=reject"), names lower-cased,
// spaces inside values removed (a DKIM key may be folded).
func tags(s string) map[string]string {
	m := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		m[strings.ToLower(strings.TrimSpace(k))] = strings.Join(strings.Fields(v), "")
	}
	return m
}

func validPolicyID(id string) bool {
	if id == "" || len(id) > 32 {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// compareAlias checks a name that must reach the server: a CNAME to it,
// or else address records equal to the server's own.
func compareAlias(ctx context.Context, q Querier, rec Record, cnames []string) (string, []string, string) {
	for _, c := range cnames {
		if c == rec.Value {
			return StatusOK, cnames, ""
		}
	}
	if len(cnames) > 0 {
		return StatusWrong, cnames, "points elsewhere"
	}
	mine, err := addrs(ctx, q, rec.Name)
	if err != nil {
		return StatusError, nil, err.Error()
	}
	if len(mine) == 0 {
		return StatusMissing, nil, ""
	}
	theirs, err := addrs(ctx, q, rec.Value)
	if err != nil {
		return StatusError, mine, err.Error()
	}
	for _, a := range mine {
		if slices.Contains(theirs, a) {
			return StatusOK, mine, "address records, not a CNAME: keep them in step with " + rec.Value
		}
	}
	return StatusWrong, mine, "addresses are not " + rec.Value + "'s (" + strings.Join(theirs, " ") + ")"
}

// addrs are a name's A and AAAA records.
func addrs(ctx context.Context, q Querier, name string) ([]string, error) {
	var out []string
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := query(ctx, q, name, qt)
		if err != nil {
			return nil, err
		}
		for _, rr := range rrs {
			switch rr := rr.(type) {
			case *dns.A:
				out = append(out, rr.A.String())
			case *dns.AAAA:
				out = append(out, rr.AAAA.String())
			}
		}
	}
	return out, nil
}

// Failed counts the results that are not ok.
func Failed(rs []Result) int {
	n := 0
	for _, r := range rs {
		if r.Status != StatusOK {
			n++
		}
	}
	return n
}
