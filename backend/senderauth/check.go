package senderauth

import (
	"context"
	"log/slog"
	"strings"

	"github.com/emersion/go-msgauth/authres"

	"github.com/vmaild/vmaild/backend/inbound"
)

// headerName is the field this package writes and guards.
const headerName = "Authentication-Results"

// Name implements inbound.Check.
func (c *Checker) Name() string { return "sender_auth" }

// Check implements inbound.Check: it evaluates the message, removes
// incoming Authentication-Results fields that claim our authserv-id,
// adds ours, and asks for the action the results call for. Clients that
// authenticated or relay from MyNetworks are not checked: their mail is
// ours, and SPF of a local relay means nothing.
func (c *Checker) Check(ctx context.Context, m *inbound.Message, v *inbound.Verdict) error {
	if m.User != "" || m.Trusted {
		return nil
	}
	id := c.AuthServID
	if id == "" {
		id = m.Hostname
	}
	for i, value := range m.Header().Values(headerName) {
		if ClaimsUs(value, id) {
			v.Remove(headerName, i+1)
		}
	}
	in := Input{IP: m.ClientIP, Helo: m.Helo, MailFrom: m.From, Message: m.Data, Size: m.Data.Size()}
	res := c.Evaluate(ctx, in)
	withID := *c
	withID.AuthServID = id
	v.Add(headerName, withID.HeaderValue(in, res))
	v.Log(slog.String("spf", string(res.SPF)), slog.String("dkim", dkimSummary(res.DKIM)),
		slog.String("dmarc", string(res.DMARC)), slog.String("from_domain", res.FromDomain))
	switch res.Action {
	case Reject:
		v.Reject(550, "5.7.1", "Message refused: "+res.Why)
	case Junk:
		v.Set(inbound.Junk, 0, "", "")
		v.Log(slog.String("why", res.Why))
	}
	return nil
}

// dkimSummary is the signatures' results for the log line: "none" or
// "pass:example.com,fail:other.test".
func dkimSummary(sigs []DKIMSignature) string {
	if len(sigs) == 0 {
		return string(authres.ResultNone)
	}
	parts := make([]string, 0, len(sigs))
	for _, s := range sigs {
		parts = append(parts, string(s.Result)+":"+s.Domain)
	}
	return strings.Join(parts, ",")
}
