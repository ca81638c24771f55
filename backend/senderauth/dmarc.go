package senderauth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/mail"
	"strings"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// checkDMARC finds the RFC5322.From domain, its policy (at the domain or
// its organizational domain) and whether SPF or DKIM passed for an
// aligned domain (RFC 7489 3.1, 6.6).
func (c *Checker) checkDMARC(ctx context.Context, in Input, res *Result) {
	from, reason := fromDomain(io.NewSectionReader(in.Message, 0, in.Size))
	if from == "" {
		res.DMARC, res.DMARCReason = authres.ResultNone, reason
		if reason != "" {
			res.DMARC = authres.ResultPermError
		}
		return
	}
	res.FromDomain = from
	org := orgDomain(from)
	opts := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) { return c.Resolver.LookupTXT(ctx, name) }}
	rec, err := dmarc.LookupWithOptions(from, opts)
	atOrg := false
	if errors.Is(err, dmarc.ErrNoPolicy) && org != from {
		rec, err = dmarc.LookupWithOptions(org, opts)
		atOrg = true
	}
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		res.DMARC = authres.ResultNone
		return
	case dmarc.IsTempFail(err):
		res.DMARC, res.DMARCReason = authres.ResultTempError, err.Error()
		return
	case err != nil:
		res.DMARC, res.DMARCReason = authres.ResultPermError, err.Error()
		return
	}
	res.DMARCPolicy = rec.Policy
	if atOrg && rec.SubdomainPolicy != "" {
		res.DMARCPolicy = rec.SubdomainPolicy
	}
	if res.SPF == authres.ResultPass && !res.SPFHelo && aligned(res.SPFDomain, from, rec.SPFAlignment) {
		res.DMARC = authres.ResultPass
		return
	}
	for _, s := range res.DKIM {
		if s.Result == authres.ResultPass && aligned(s.Domain, from, rec.DKIMAlignment) {
			res.DMARC = authres.ResultPass
			return
		}
	}
	// An aligned identifier that could not be checked for DNS trouble
	// might have passed: the result is temperror, never a fail that
	// p=reject would turn into a 550 for an outage.
	if res.SPF == authres.ResultTempError && !res.SPFHelo && aligned(res.SPFDomain, from, rec.SPFAlignment) {
		res.DMARC, res.DMARCReason = authres.ResultTempError, "SPF of "+res.SPFDomain+" could not be checked"
		return
	}
	for _, s := range res.DKIM {
		if s.Result == authres.ResultTempError && aligned(s.Domain, from, rec.DKIMAlignment) {
			res.DMARC, res.DMARCReason = authres.ResultTempError, "DKIM signature of "+s.Domain+" could not be checked"
			return
		}
	}
	res.DMARC = authres.ResultFail
	if rec.Percent != nil && *rec.Percent < 100 && !c.sample(*rec.Percent) {
		// Outside the sampled share the next weaker policy applies.
		switch res.DMARCPolicy {
		case dmarc.PolicyReject:
			res.DMARCPolicy = dmarc.PolicyQuarantine
		case dmarc.PolicyQuarantine:
			res.DMARCPolicy = dmarc.PolicyNone
		}
		res.DMARCReason = fmt.Sprintf("pct=%d: not sampled", *rec.Percent)
	}
}

func (c *Checker) sample(pct int) bool {
	if c.Sample != nil {
		return c.Sample(pct)
	}
	return rand.IntN(100) < pct
}

// fromDomain returns the domain of the message's single From address; a
// missing, repeated or unparsable From gives "" and why (RFC 7489 6.6.1).
func fromDomain(r io.Reader) (string, string) {
	h, err := textproto.ReadHeader(bufio.NewReader(r))
	if err != nil {
		return "", "unreadable header"
	}
	vals := h.Values("From")
	if len(vals) == 0 {
		return "", ""
	}
	if len(vals) > 1 {
		return "", "several From fields"
	}
	addrs, err := mail.ParseAddressList(vals[0])
	if err != nil || len(addrs) != 1 {
		return "", "From field without exactly one address"
	}
	_, dom, ok := strings.Cut(addrs[0].Address, "@")
	if !ok || dom == "" {
		return "", "From address without a domain"
	}
	return strings.ToLower(strings.TrimSuffix(dom, ".")), ""
}

// orgDomain is the registered domain under its public suffix, or the
// domain itself when the suffix list does not know it.
func orgDomain(d string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// aligned compares an authenticated domain with the From domain: equal
// in strict mode, same organizational domain in relaxed (the default).
func aligned(authDomain, from string, mode dmarc.AlignmentMode) bool {
	authDomain = strings.ToLower(strings.TrimSuffix(authDomain, "."))
	if authDomain == "" {
		return false
	}
	if mode == dmarc.AlignmentStrict {
		return authDomain == from
	}
	return orgDomain(authDomain) == orgDomain(from)
}
