package smtp

import (
	"fmt"
	"testing"

	"github.com/vmaild/vmaild/backend/delivery"
)

// TestReply: the one mapping of delivery outcomes to replies.
func TestReply(t *testing.T) {
	filter := delivery.Perm(delivery.Rejected)
	filter.Text = "no thanks\r\n250 injected"
	for _, tt := range []struct {
		o    delivery.Outcome
		want string
	}{
		{delivery.Outcome{Kind: delivery.Accepted}, "250 2.1.5 Recipient OK"},
		{delivery.Outcome{Kind: delivery.Delivered}, "250 2.0.0 Delivered"},
		{delivery.Outcome{Kind: delivery.Queued}, "250 2.0.0 Queued for delivery"},
		{delivery.Temp(delivery.DiskFull), "452 4.3.1 Insufficient system storage, try again later"},
		{delivery.Temp(delivery.MailboxFull), "452 4.2.2 Mailbox full"},
		{delivery.Temp(delivery.DirectoryDown), "451 4.3.0 Directory temporarily unavailable, try again later"},
		{delivery.Temp(delivery.TimedOut), "451 4.3.0 Delivery took too long, try again later"},
		{delivery.Perm(delivery.OverQuota), "552 5.2.2 Message would exceed the mailbox quota"},
		{delivery.Perm(delivery.NoSuchUser), "550 5.1.1 No such user here"},
		{delivery.Perm(delivery.Loop), "554 5.4.6 Mail loop detected"},
		{filter, "550 5.7.1 no thanks  250 injected"},
		{delivery.Perm(delivery.Cause(99)), "554 5.0.0 Delivery failed"},
		{delivery.Outcome{Kind: delivery.Kind(99)}, "451 4.3.0 Temporary local problem, try again later"},
	} {
		r := Reply(tt.o)
		e := r.EnhancedCode
		if got := fmt.Sprintf("%d %d.%d.%d %s", r.Code, e[0], e[1], e[2], r.Message); got != tt.want {
			t.Errorf("Reply(%v) = %q, want %q", tt.o, got, tt.want)
		}
	}
}
