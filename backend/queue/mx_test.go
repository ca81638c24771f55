package queue

import (
	"context"
	"testing"
	"time"

	"github.com/vmaild/vmaild/backend/queue/queuetest"
)

// TestLookupMX checks ordering and classification directly.
func TestLookupMX(t *testing.T) {
	d := queuetest.NewDNS(t)
	d.MX("order.test", 30, "c.order.test")
	d.MX("order.test", 10, "a1.order.test")
	d.MX("order.test", 20, "b.order.test")
	d.MX("order.test", 10, "a2.order.test")
	d.MX("mixed.test", 0, ".")
	d.MX("mixed.test", 10, "mx.mixed.test")
	d.MX("null.test", 0, ".")
	d.TXT("nomx.test", "x")
	d.MX("fail.test", 10, "mx.fail.test")
	d.ServFail("fail.test", true)
	res, err := newResolver(d.Addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	last := func(n int) int { return n - 1 } // swap each with itself: keeps DNS order
	first := func(int) int { return 0 }
	tests := []struct {
		domain   string
		rng      func(int) int
		want     []string
		implicit bool
		status   string
		perm     bool
	}{
		{"order.test", last, []string{"a1.order.test", "a2.order.test", "b.order.test", "c.order.test"}, false, "", false},
		{"order.test", first, []string{"a2.order.test", "a1.order.test", "b.order.test", "c.order.test"}, false, "", false},
		{"mixed.test", last, []string{"mx.mixed.test"}, false, "", false},
		{"null.test", last, nil, false, "5.1.10", true},
		{"nomx.test", last, []string{"nomx.test"}, true, "", false},
		{"missing.test", last, nil, false, "5.1.2", true},
		{"fail.test", last, nil, false, "4.4.3", false},
	}
	for _, tc := range tests {
		t.Run(tc.domain, func(t *testing.T) {
			hosts, implicit, _, fail := res.lookupMX(context.Background(), tc.domain, tc.rng)
			if tc.status != "" {
				if fail == nil || fail.Status != tc.status || fail.Perm != tc.perm {
					t.Fatalf("fail = %+v, want %s perm=%v", fail, tc.status, tc.perm)
				}
				return
			}
			if fail != nil {
				t.Fatalf("unexpected failure %+v", fail)
			}
			var names []string
			for _, h := range hosts {
				names = append(names, h.Name)
			}
			if len(names) != len(tc.want) || implicit != tc.implicit {
				t.Fatalf("hosts = %v implicit=%v, want %v implicit=%v", names, implicit, tc.want, tc.implicit)
			}
			for i := range names {
				if names[i] != tc.want[i] {
					t.Fatalf("hosts = %v, want %v", names, tc.want)
				}
			}
		})
	}
}
