package inbound

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/vmaild/vmaild/backend/delivery"
)

// spamFields are the fields MarkSpam writes; copies that came with the
// message are removed first, so a sender cannot say "X-Spam-Flag: NO"
// for us.
var spamFields = []string{"X-Spam-Flag", "X-Spam-Score", "X-Spam-Status", "X-Spam-Report"}

// MarkSpam records a spam scanner's opinion in v (for Junk filing and
// Sieve's spamtest) and as SpamAssassin's fields, which mail clients and
// user filters already know: X-Spam-Flag (YES or NO), X-Spam-Score,
// X-Spam-Status ("Yes, score=7.2 required=5.0 tests=A,B scanner=rspamd")
// and, when the report is not empty, X-Spam-Report. A second scanner
// leaves the fields of the first and adds its own below them.
func MarkSpam(m *Message, v *Verdict, s delivery.Spam, tests []string, report string) {
	if !v.Spam.Checked {
		removeSenderSpamFields(m, v)
	}
	if !v.Spam.Checked || s.Flag || !v.Spam.Flag {
		v.Spam = s
	}
	flag, yes := "NO", "No"
	if s.Flag {
		flag, yes = "YES", "Yes"
	}
	score := strconv.FormatFloat(s.Score, 'f', 2, 64)
	v.Add("X-Spam-Flag", flag)
	v.Add("X-Spam-Score", score)
	status := fmt.Sprintf("%s, score=%s required=%s", yes, score, strconv.FormatFloat(s.Threshold, 'f', 2, 64))
	if len(tests) > 0 {
		status += "\n\ttests=" + strings.Join(tests, ",")
	}
	v.Add("X-Spam-Status", status+"\n\tscanner="+s.Scanner)
	if report = strings.TrimSpace(report); report != "" {
		v.Add("X-Spam-Report", report)
	}
	v.Log(slog.String("score", score), slog.String("spam", flag))
}

// removeSenderSpamFields removes the spam fields that came with the
// message: only our scanners' opinion may be in them.
func removeSenderSpamFields(m *Message, v *Verdict) {
	h := m.Header()
	for _, name := range spamFields {
		for i := range h.Values(name) {
			v.Remove(name, i+1)
		}
	}
}

// Dial connects to a scanner under ctx: the connection's deadline is
// ctx's, and it is closed when ctx is done, so a scanner that hangs
// mid-answer ends the check at its timeout. Call stop when done with it.
// address is a socket path ("/run/clamav/clamd.ctl", or "unix:" and a
// path) or a TCP address ("127.0.0.1:3310", "tcp:" or Postfix's "inet:"
// before it).
func Dial(ctx context.Context, address string) (conn net.Conn, stop func(), err error) {
	network, addr := SplitAddress(address)
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", address, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	release := context.AfterFunc(ctx, func() { c.Close() })
	return c, func() { release(); c.Close() }, nil
}

// SplitAddress reads a scanner's address (see Dial) as a network and an
// address for net.Dial.
func SplitAddress(address string) (network, addr string) {
	switch {
	case strings.HasPrefix(address, "unix:"):
		return "unix", strings.TrimPrefix(address, "unix:")
	case strings.HasPrefix(address, "/"):
		return "unix", address
	case strings.HasPrefix(address, "tcp:"):
		return "tcp", strings.TrimPrefix(address, "tcp:")
	case strings.HasPrefix(address, "inet:"):
		return "tcp", strings.TrimPrefix(address, "inet:")
	}
	return "tcp", address
}
