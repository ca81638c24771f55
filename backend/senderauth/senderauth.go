// Package senderauth tells forged from genuine inbound mail: it evaluates
// SPF (RFC 7208) for the client and MAIL FROM, verifies DKIM signatures
// (RFC 6376), applies the From domain's DMARC policy (RFC 7489), and turns
// the results into one Authentication-Results header field (RFC 8601) and
// one Action. Every DNS question goes through the configured resolver.
package senderauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
)

// Resolver is the DNS the checks use; *dnsclient.Resolver is one. Errors
// must be *net.DNSError classified as net.Resolver does.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Action is what the results ask of the message.
type Action int

const (
	// Accept delivers the message with the header field added.
	Accept Action = iota
	// Junk delivers it into the recipient's Junk folder.
	Junk
	// Reject refuses it with 550 5.7.1 before the DATA reply.
	Reject
)

func (a Action) String() string {
	switch a {
	case Junk:
		return "junk"
	case Reject:
		return "reject"
	}
	return "accept"
}

// ParseAction reads the configuration's words for an action: "reject",
// "quarantine" (or "junk") and "mark" (or "accept", "none").
func ParseAction(s string) (Action, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "reject":
		return Reject, nil
	case "quarantine", "junk":
		return Junk, nil
	case "mark", "accept", "none", "":
		return Accept, nil
	}
	return Accept, fmt.Errorf("unknown action %q (want reject, quarantine or mark)", s)
}

// DefaultMaxSignatures bounds the DKIM signatures verified per message, so
// a message with hundreds of them costs no more than a few.
const DefaultMaxSignatures = 5

// Checker evaluates messages. Its zero value is not usable: Resolver and
// AuthServID are needed.
type Checker struct {
	Resolver Resolver
	// AuthServID names this server in Authentication-Results (our
	// hostname).
	AuthServID string
	// DMARCReject is done with mail failing DMARC whose domain publishes
	// p=reject (default Reject). p=quarantine always means Junk unless
	// this is Accept (mark only); p=none only marks.
	DMARCReject Action
	// SPFFail is done with mail whose SPF result is fail (default
	// Accept: DMARC decides).
	SPFFail Action
	// MaxSignatures bounds DKIM verifications per message (default
	// DefaultMaxSignatures).
	MaxSignatures int
	// Sample decides whether a failing message falls within a policy's
	// pct= (RFC 7489 6.6.4); nil draws at random. Tests fix it.
	Sample func(pct int) bool
}

// Input is one message and the facts of its arrival.
type Input struct {
	IP       netip.Addr
	Helo     string
	MailFrom string // "" is the null sender
	// Message is the message as received (header and body).
	Message io.ReaderAt
	Size    int64
}

// DKIMSignature is the result of one signature.
type DKIMSignature struct {
	Result     authres.ResultValue
	Domain     string
	Identifier string
	Reason     string
}

// Result is everything the checks found.
type Result struct {
	SPF       authres.ResultValue
	SPFDomain string // the domain SPF was checked for (MAIL FROM's, or HELO's)
	SPFHelo   bool   // SPFDomain came from HELO (null sender)
	SPFReason string

	DKIM []DKIMSignature // empty: no signature (dkim=none)

	DMARC       authres.ResultValue
	DMARCPolicy dmarc.Policy // the policy applied, "" without a record
	FromDomain  string
	DMARCReason string

	Action Action
	// Why explains a Junk or Reject, for the reply and the logs.
	Why string
}

// Evaluate runs SPF, DKIM and DMARC. It never fails: DNS trouble is a
// temperror result, a malformed message a permerror.
func (c *Checker) Evaluate(ctx context.Context, in Input) Result {
	var res Result
	c.checkSPF(ctx, in, &res)
	c.checkDKIM(ctx, in, &res)
	c.checkDMARC(ctx, in, &res)
	c.decide(&res)
	return res
}

func (c *Checker) checkSPF(ctx context.Context, in Input, res *Result) {
	_, domain, ok := strings.Cut(in.MailFrom, "@")
	if !ok || domain == "" {
		domain, res.SPFHelo = in.Helo, true
	}
	res.SPFDomain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if !in.IP.IsValid() {
		res.SPF, res.SPFReason = authres.ResultNone, "no client address"
		return
	}
	r, err := spf.CheckHostWithSender(net.IP(in.IP.Unmap().AsSlice()), in.Helo, in.MailFrom,
		spf.WithContext(ctx), spf.WithResolver(c.Resolver))
	res.SPF = authres.ResultValue(r)
	if err != nil && r != spf.Pass && r != spf.None && !isMatch(err) {
		res.SPFReason = err.Error()
	}
}

// isMatch tells the library's "errors" that only say which mechanism
// matched.
func isMatch(err error) bool {
	for _, m := range []error{spf.ErrMatchedAll, spf.ErrMatchedA, spf.ErrMatchedIP, spf.ErrMatchedMX, spf.ErrMatchedPTR, spf.ErrMatchedExists} {
		if errors.Is(err, m) {
			return true
		}
	}
	return false
}

func (c *Checker) checkDKIM(ctx context.Context, in Input, res *Result) {
	max := c.MaxSignatures
	if max <= 0 {
		max = DefaultMaxSignatures
	}
	opts := &dkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return c.Resolver.LookupTXT(ctx, name) },
		MaxVerifications: max,
	}
	verifs, err := dkim.VerifyWithOptions(io.NewSectionReader(in.Message, 0, in.Size), opts)
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		// The header itself could not be read: one permerror stands for
		// whatever signatures it held.
		res.DKIM = []DKIMSignature{{Result: authres.ResultPermError, Reason: "malformed header: " + err.Error()}}
		return
	}
	for _, v := range verifs {
		s := DKIMSignature{Domain: v.Domain, Identifier: v.Identifier, Result: authres.ResultPass}
		switch {
		case v.Err == nil:
		case dkim.IsTempFail(v.Err):
			s.Result, s.Reason = authres.ResultTempError, v.Err.Error()
		case dkim.IsPermFail(v.Err):
			s.Result, s.Reason = authres.ResultPermError, v.Err.Error()
		default:
			s.Result, s.Reason = authres.ResultFail, v.Err.Error()
		}
		res.DKIM = append(res.DKIM, s)
	}
}

// decide turns the results into the action: the strictest of what DMARC
// and SPF ask for.
func (c *Checker) decide(res *Result) {
	if res.DMARC == authres.ResultFail {
		switch res.DMARCPolicy {
		case dmarc.PolicyReject:
			res.Action = c.DMARCReject
		case dmarc.PolicyQuarantine:
			res.Action = min(c.DMARCReject, Junk)
		}
		if res.Action != Accept {
			res.Why = "DMARC policy of " + res.FromDomain + " (p=" + string(res.DMARCPolicy) + ") failed"
		}
	}
	if res.SPF == authres.ResultFail && c.SPFFail > res.Action {
		res.Action = c.SPFFail
		res.Why = "SPF of " + res.SPFDomain + " does not allow this client"
	}
}

// HeaderValue returns the value of the Authentication-Results field,
// folded one method per line (CRLF and a tab).
func (c *Checker) HeaderValue(in Input, res Result) string {
	var rs []authres.Result
	spfr := &authres.SPFResult{Value: res.SPF, Reason: res.SPFReason}
	if res.SPFHelo {
		spfr.Helo = res.SPFDomain
	} else {
		spfr.From = in.MailFrom
	}
	rs = append(rs, spfr)
	if len(res.DKIM) == 0 {
		rs = append(rs, &authres.DKIMResult{Value: authres.ResultNone})
	}
	for _, s := range res.DKIM {
		rs = append(rs, &authres.DKIMResult{Value: s.Result, Reason: s.Reason, Domain: s.Domain, Identifier: s.Identifier})
	}
	rs = append(rs, &authres.DMARCResult{Value: res.DMARC, Reason: res.DMARCReason, From: res.FromDomain})
	var b strings.Builder
	b.WriteString(c.AuthServID)
	for _, r := range rs {
		// Format with an empty identity gives "; method=value params".
		part := strings.TrimSpace(authres.Format("", []authres.Result{r}))
		b.WriteString(";\r\n\t")
		b.WriteString(oneLine(strings.TrimPrefix(part, "; ")))
	}
	return b.String()
}

// oneLine keeps a reason taken from DNS or the message from breaking the
// header: control characters become spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
