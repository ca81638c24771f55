package bridge

import (
	"context"
	"fmt"
	"strings"

	"github.com/vmaild/vmaild/backend/delivery"
)

// Policy is a Postfix policy delegation service (check_policy_service in
// smtpd_recipient_restrictions): for each recipient it answers what
// vmaild's own RCPT would, Dovecot's quota-status semantics included:
//
//   - DUNNO for a recipient vmaild would take, or one outside its domains;
//   - OverQuota (defer_if_permit by default: 450 4.2.2) when every mailbox
//     the recipient reaches is full, the usage read live;
//   - vmaild's reply as "550 5.1.1 …" for an unknown local recipient (and
//     likewise for a disabled one);
//   - DirectoryDown (451 4.3.0 by default) when the directory does not
//     answer: never a 5xx for a directory outage.
//
// Requests other than at RCPT are answered DUNNO.
type Policy struct {
	Answers *Answers
	// OverQuota is the action for a full mailbox; "" is
	// DefaultOverQuotaAction.
	OverQuota string
	// DirectoryDown is the action when the directory is unavailable; "" is
	// vmaild's own 451 4.3.0 reply.
	DirectoryDown string
}

// DefaultOverQuotaAction defers the recipient (450) unless a later
// restriction rejects it anyway.
const DefaultOverQuotaAction = "DEFER_IF_PERMIT 4.2.2 Mailbox full"

// Policy protocol bounds: Postfix sends a few dozen short attributes.
const (
	policyMaxLine  = 8192
	policyMaxAttrs = 256
)

// Name implements Protocol.
func (*Policy) Name() string { return "policy" }

// Serve implements Protocol: name=value lines, an empty line ends a
// request, "action=…" and an empty line answer it; Postfix keeps the
// connection for further requests.
func (p *Policy) Serve(ctx context.Context, c *Conn) error {
	for {
		if err := c.Next(); err != nil {
			return err
		}
		attrs := map[string]string{}
		for {
			line, err := readLine(c, policyMaxLine)
			if err != nil {
				return err
			}
			if line == "" {
				break
			}
			name, value, ok := strings.Cut(line, "=")
			if !ok || name == "" {
				return hangUp("policy: %q is not name=value", line)
			}
			if len(attrs) >= policyMaxAttrs {
				return hangUp("policy: more than %d attributes", policyMaxAttrs)
			}
			attrs[name] = value
		}
		if r := attrs["request"]; r != "smtpd_access_policy" {
			return hangUp("policy: request %q is not smtpd_access_policy", r)
		}
		if _, err := fmt.Fprintf(c.w, "action=%s\n\n", p.Action(ctx, attrs)); err != nil {
			return err
		}
		if err := c.End(); err != nil {
			return err
		}
	}
}

// Action is the answer to one request's attributes.
func (p *Policy) Action(ctx context.Context, attrs map[string]string) string {
	rcpt := attrs["recipient"]
	if !strings.EqualFold(attrs["protocol_state"], "RCPT") || rcpt == "" {
		return "DUNNO"
	}
	o := p.Answers.Recipient(ctx, rcpt)
	switch {
	case o.OK():
		return "DUNNO"
	case o.Kind == delivery.Temporary && o.Cause == delivery.MailboxFull:
		if p.OverQuota != "" {
			return p.OverQuota
		}
		return DefaultOverQuotaAction
	case o.Kind == delivery.Temporary && p.DirectoryDown != "":
		return p.DirectoryDown
	}
	r := Reply(o)
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2], r.Message)
}
